#!/usr/bin/env bash
# How long `ckpt run` needs from SIGTERM to the final checkpoint committed, for a 1 GiB
# checkpoint directory that changed since the last save (the worst case: all of it goes up),
# into S3 (a real radosgw on loopback), against the 25 s default grace period.
#   bench/run_sigterm.sh [BUILD_DIR]        (default build; starts its own radosgw)
# Env: CKPT_S3_ENV=FILE reuses a running server's env file; BENCH_MIB (1024), BENCH_FILES (4),
# BENCH_REPEAT (3), BENCH_DIR (where the checkpoint directory lives: a reflink filesystem
# such as XFS makes the snapshot nearly free; default under $TMPDIR).
# Times come from ckpt run's own --json events (signal, exited, saving, committed).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
CKPT=${CKPT:-$BUILD/ckpt}
[ -x "$CKPT" ] || { echo "no ckpt binary at $CKPT (build first)" >&2; exit 1; }
MIB=${BENCH_MIB:-1024}
NFILES=${BENCH_FILES:-4}
REPEAT=${BENCH_REPEAT:-3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ckpt-runsig.XXXXXX")
DIR=${BENCH_DIR:-$WORK}/ckpt-dir
SERVER=""
RUN_PID=""
finish() {
  [ -n "$RUN_PID" ] && kill -KILL "$RUN_PID" 2>/dev/null || true
  [ -n "$SERVER" ] && "$ROOT/scripts/s3_server.sh" stop "$SERVER" || true
  rm -rf "$WORK" "$DIR" "$(dirname "$DIR")/.ckpt-staging"
}
trap finish EXIT

if [ -z "${CKPT_S3_ENV:-}" ]; then
  SERVER=$WORK/server
  CKPT_S3_MEMSTORE_MB=$((MIB * 3 + 1024)) "$ROOT/scripts/s3_server.sh" start "$SERVER"
  CKPT_S3_ENV=$SERVER/env
fi
# shellcheck source=/dev/null
. "$CKPT_S3_ENV"
S3TOOL="/usr/bin/python3 $ROOT/tests/s3/s3tool.py"
B=s3://$CKPT_TEST_BUCKET/bench-run-$$
export AWS_EC2_METADATA_DISABLED=true NO_COLOR=1 CKPT_STATE_DIR=$WORK/state

gc() {
  $S3TOOL rm-prefix "$B/" >/dev/null
  if [ -n "${CKPT_TEST_CEPH_CONF:-}" ]; then
    timeout 120 radosgw-admin -c "$CKPT_TEST_CEPH_CONF" -n client.admin gc process --include-all \
      >/dev/null 2>&1 || true
  fi
}

echo "data: ${NFILES} files totalling ${MIB} MiB in $DIR ($(stat -f -c %T "$(dirname "$DIR")"))" >&2
mkdir -p "$DIR"
for i in $(seq 1 "$NFILES"); do
  head -c $(((MIB << 20) / NFILES)) /dev/urandom >"$DIR/shard$i.bin"
done
# Warm-up, untimed: a fresh OSD's first fill of memory is several times slower than later ones.
"$CKPT" save -q --dest "$B/warm" "$DIR"
gc
echo "ckpt: $CKPT ($("$CKPT" --version 2>&1 | head -1)); server: $AWS_ENDPOINT_URL (radosgw, memstore, loopback)"

for r in $(seq 1 "$REPEAT"); do
  D=$B/attempt-$r
  # The job: marks every file written (as a training step would), then trains until told to stop.
  "$CKPT" run --json --dir "$DIR" --dest "$D" -- \
    sh -c 'touch "$CKPT_DIR"/*; echo ready; exec sleep 3600' >"$WORK/out" 2>"$WORK/events" &
  RUN_PID=$!
  for _ in $(seq 1 600); do grep -q ready "$WORK/out" && break; sleep 0.05; done
  grep -q ready "$WORK/out" || { echo "the job did not start:" >&2; cat "$WORK/events" >&2; exit 1; }
  kill -TERM "$RUN_PID"
  code=0
  wait "$RUN_PID" || code=$?
  RUN_PID=""
  [ "$code" = 143 ] || { echo "ckpt run exited $code, expected 143:" >&2; cat "$WORK/events" >&2; exit 1; }
  "$CKPT" exists -q --src "$D" || { echo "no complete checkpoint at $D after the run" >&2; exit 1; }
  /usr/bin/python3 - "$WORK/events" "$r" <<'EOF'
import json, sys, datetime
def t(e):
    return datetime.datetime.strptime(e["time"], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
ev = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
first = lambda name, **kw: next(e for e in ev if e["event"] == name and all(e.get(k) == v for k, v in kw.items()))
sig, exited, saving = first("signal"), first("exited"), first("saving", final=True)
committed = first("committed", job=saving["job"])
total = t(committed) - t(sig)
grace = sig.get("grace_ms", 25000) / 1000
print("run %s: SIGTERM -> committed %.2f s (CMD gone after %.2f s; snapshot of %.0f MiB %.2f s by %s; "
      "upload and commit %.2f s) | grace %.0f s: %s"
      % (sys.argv[2], total, t(exited) - t(sig), saving["bytes"] / 2**20, saving["snapshot_ms"] / 1000,
         saving["method"], t(committed) - t(saving), grace,
         "fits, %.1f s to spare" % (grace - total) if total < grace else "DOES NOT FIT"))
EOF
  gc
done
