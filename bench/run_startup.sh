#!/usr/bin/env bash
# What `ckpt run` adds to a job's start and end: `ckpt run --dir D --dest X -- true` against
# `true` alone, with hyperfine (no shell in between, -N). X is an empty local destination, so
# each run looks for a checkpoint (none), starts CMD, finds nothing to save and exits: the
# fixed cost of the wrapper. Prints both means, the ratio and the added milliseconds, and for
# reference a plain `ckpt exists` (the binary's own start-up plus one listing).
#   bench/run_startup.sh [BUILD_DIR]      Env: BENCH_RUNS (default 300)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
CKPT=${CKPT:-$BUILD/ckpt}
[ -x "$CKPT" ] || { echo "no ckpt binary at $CKPT (build first)" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "hyperfine is not on PATH" >&2; exit 1; }
RUNS=${BENCH_RUNS:-300}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ckpt-runbench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export CKPT_STATE_DIR=$WORK/state NO_COLOR=1
TRUE=$(command -v true)

hyperfine -N -i --warmup 20 --runs "$RUNS" --export-json "$WORK/result.json" \
  "$TRUE" "$CKPT run -q --dir $WORK/dir --dest $WORK/dest -- $TRUE" \
  "$CKPT exists -q --src $WORK/dest" >&2
/usr/bin/python3 - "$WORK/result.json" "$RUNS" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
base, run = r[0]["mean"], r[1]["mean"]
print("true alone:              %7.3f ms (+- %.3f)" % (base * 1e3, r[0]["stddev"] * 1e3))
print("ckpt run -- true:        %7.3f ms (+- %.3f)" % (run * 1e3, r[1]["stddev"] * 1e3))
print("ratio ckpt run / true:   %7.1f x   (ckpt run adds %.2f ms per job, %s runs each)"
      % (run / base, (run - base) * 1e3, sys.argv[2]))
print("for reference, ckpt exists: %5.3f ms" % (r[2]["mean"] * 1e3))
EOF
