#!/usr/bin/env bash
# ckpt vs the AWS CLI (`aws s3 cp`) on the same radosgw: upload and download of one 512 MiB
# file and of a 512 MiB directory of many files. Prints each tool's wall time and peak RSS
# and the ratio ckpt/aws measured in this run (below 0.5 = at least twice as fast).
#   bench/s3_transfer.sh [BUILD_DIR]        (default build; starts its own radosgw)
# Env: CKPT_S3_ENV=FILE reuses a running server's env file; BENCH_MIB (512), BENCH_FILES
# (512 files in the directory case), BENCH_REPEAT (1: best of N runs per measurement).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
CKPT=${CKPT:-$BUILD/ckpt}
[ -x "$CKPT" ] || { echo "no ckpt binary at $CKPT (build first)" >&2; exit 1; }
command -v aws >/dev/null || { echo "the AWS CLI (aws) is not on PATH" >&2; exit 1; }
MIB=${BENCH_MIB:-512}
NFILES=${BENCH_FILES:-512}
REPEAT=${BENCH_REPEAT:-1}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ckpt-s3bench.XXXXXX")
SERVER=""
finish() {
  [ -n "$SERVER" ] && "$ROOT/scripts/s3_server.sh" stop "$SERVER" || true
  rm -rf "$WORK"
}
trap finish EXIT

if [ -z "${CKPT_S3_ENV:-}" ]; then
  SERVER=$WORK/server
  # Room for one tool's copy of both data sets plus what garbage collection has not freed.
  CKPT_S3_MEMSTORE_MB=$((MIB * 5 + 1024)) "$ROOT/scripts/s3_server.sh" start "$SERVER"
  CKPT_S3_ENV=$SERVER/env
fi
# shellcheck source=/dev/null
. "$CKPT_S3_ENV"
S3TOOL="/usr/bin/python3 $ROOT/tests/s3/s3tool.py"
B=s3://$CKPT_TEST_BUCKET/bench-$$
export AWS_EC2_METADATA_DISABLED=true NO_COLOR=1

echo "data: one ${MIB} MiB file; ${NFILES} files totalling ${MIB} MiB" >&2
mkdir -p "$WORK/one" "$WORK/many"
head -c $((MIB << 20)) /dev/urandom >"$WORK/one/big.bin"
per=$(((MIB << 20) / NFILES))
for i in $(seq 1 "$NFILES"); do head -c "$per" /dev/urandom >"$WORK/many/f$(printf %04d "$i").bin"; done

# measure NAME cmd... -> sets SECS and RSS_MIB (best wall time over REPEAT runs)
measure() {
  local name=$1 best="" rss=0 r
  shift
  for ((r = 0; r < REPEAT; r++)); do
    [ -n "${BEFORE_EACH:-}" ] && eval "$BEFORE_EACH"
    /usr/bin/time -v -o "$WORK/time" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" ||
      { echo "$name failed:" >&2; cat "$WORK/$name.err" >&2; exit 1; }
    local wall kib
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$WORK/time")
    kib=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time")
    if [ -z "$best" ] || awk "BEGIN{exit !($wall < $best)}"; then best=$wall; rss=$kib; fi
  done
  SECS=$best
  RSS_MIB=$((rss / 1024))
}

gc() {  # [PREFIX]: delete it (default: everything of this run) and free the space
  $S3TOOL rm-prefix "${1:-$B}/" >/dev/null
  if [ -n "${CKPT_TEST_CEPH_CONF:-}" ]; then
    timeout 120 radosgw-admin -c "$CKPT_TEST_CEPH_CONF" -n client.admin gc process --include-all \
      >/dev/null 2>&1 || true
  fi
}

row() {  # CASE DIRECTION
  printf '%-22s %-9s ckpt %7.2f s %5d MiB | aws %7.2f s %5d MiB | ratio ckpt/aws %.2f\n' \
    "$1" "$2" "$CK_S" "$CK_RSS" "$AWS_S" "$AWS_RSS" "$(awk "BEGIN{print $CK_S / $AWS_S}")"
}

# Warm-up, untimed: a fresh OSD's first fill of memory was 4x slower than later ones.
aws s3 cp --quiet --recursive "$WORK/one" "$B/warm" && "$CKPT" save -q --dest "$B/warm2" "$WORK/one"
gc

echo "ckpt: $CKPT ($("$CKPT" --version 2>&1 | head -1)); aws: $(aws --version 2>&1)"
alloc=glibc
grep -q tcmalloc "/proc/$(cat "$CKPT_TEST_S3_DIR/rgw.pid" 2>/dev/null)/maps" 2>/dev/null && alloc=tcmalloc
echo "server: $AWS_ENDPOINT_URL (radosgw, memstore, loopback; Ceph on $alloc, see scripts/s3_server.sh)"
for case in one many; do
  if [ "$case" = one ]; then label="1 x ${MIB} MiB file"; else label="${NFILES} files, ${MIB} MiB"; fi
  # Uploads (each into a fresh prefix).
  BEFORE_EACH='gc "$B/ck"'
  measure ckpt_up "$CKPT" save -q --dest "$B/ck" "$WORK/$case"
  CK_S=$SECS CK_RSS=$RSS_MIB
  BEFORE_EACH='gc "$B/aws"'
  measure aws_up aws s3 cp --quiet --recursive "$WORK/$case" "$B/aws"
  AWS_S=$SECS AWS_RSS=$RSS_MIB
  row "$label" upload
  # Downloads of what each tool uploaded, into fresh directories.
  BEFORE_EACH='rm -rf "$WORK/dl"; mkdir "$WORK/dl"; sync'
  measure ckpt_down "$CKPT" restore -q --src "$B/ck" "$WORK/dl"
  CK_S=$SECS CK_RSS=$RSS_MIB
  diff -r "$WORK/$case" "$WORK/dl" >/dev/null || { echo "ckpt download differs" >&2; exit 1; }
  measure aws_down aws s3 cp --quiet --recursive "$B/aws" "$WORK/dl"
  AWS_S=$SECS AWS_RSS=$RSS_MIB
  diff -r "$WORK/$case" "$WORK/dl" >/dev/null || { echo "aws download differs" >&2; exit 1; }
  row "$label" download
  BEFORE_EACH=''
  gc
done
