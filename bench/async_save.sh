#!/usr/bin/env bash
# The training stall of `ckpt save --async` (the time until it returns: the snapshot) for a
# 1 GiB directory of 8 files, against `cp -r` of the same data on the same filesystem, measured
# in the same run with a warm page cache:
#   1. local destination, staging on this filesystem (a kernel copy);
#   2. S3 destination (a throwaway radosgw, or CKPT_S3_ENV=FILE of a running one);
#   3. staging on a loop-mounted XFS image with reflinks (needs root and mkfs.xfs from xfsprogs).
# Then the cost of a flat-layout save into a destination that already holds a checkpoint (its
# keys are staged and published after the commit) against a save into an empty one.
#   bench/async_save.sh [BUILD_DIR]   (default build)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
CKPT=${CKPT:-$BUILD/ckpt}
[ -x "$CKPT" ] || { echo "no ckpt binary at $CKPT (build first)" >&2; exit 1; }
W=$(mktemp -d "${TMPDIR:-/var/tmp}/ckpt-bench-async.XXXXXX")
SERVER="" XFS="" PROXY_PID=""
finish() {
  [ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null || true
  [ -n "$XFS" ] && umount "$XFS" 2>/dev/null || true
  [ -n "$SERVER" ] && "$ROOT/scripts/s3_server.sh" stop "$SERVER" >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap finish EXIT
export CKPT_STATE_DIR=$W/state NO_COLOR=1
ms() { echo $((($2 - $1) / 1000000)); }
now() { date +%s%N; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
median() { printf '%s\n' "$@" | sort -n | sed -n "$((($# + 1) / 2))p"; }

make_data() {  # DIR
  mkdir -p "$1"
  for i in 1 2 3 4 5 6 7 8; do head -c $((128 << 20)) /dev/urandom >"$1/shard$i.bin"; done
  cat "$1"/* >/dev/null
}
# Stall of save --async (median of 3) and of cp -r (median of 3) on the filesystem of DATA.
measure() {  # LABEL DATA DEST
  local label=$1 data=$2 dest=$3 t0 t1 cps=() stalls=()
  for r in 1 2 3; do
    rm -rf "$data.cp"
    sync
    t0=$(now); cp -r "$data" "$data.cp"; t1=$(now); cps+=("$(ms "$t0" "$t1")")
    rm -rf "$data.cp"
    sync
    t0=$(now); "$CKPT" save -q --async --dest "$dest" "$data"; t1=$(now); stalls+=("$(ms "$t0" "$t1")")
    "$CKPT" wait -q --dest "$dest"
  done
  local s c
  s=$(median "${stalls[@]}")
  c=$(median "${cps[@]}")
  printf '%-44s stall %6s ms   cp -r %6s ms   ratio %s\n' "$label" "$s" "$c" "$(ratio "$s" "$c")"
}

echo "== save --async stall, 1 GiB in 8 files (median of 3)"
make_data "$W/data"
measure "local destination, kernel-copy staging" "$W/data" "$W/dest"

if [ -z "${CKPT_S3_ENV:-}" ]; then
  SERVER=$W/server
  CKPT_S3_MEMSTORE_MB=6144 "$ROOT/scripts/s3_server.sh" start "$SERVER" >/dev/null
  CKPT_S3_ENV=$SERVER/env
fi
# shellcheck source=/dev/null
. "$CKPT_S3_ENV"
measure "S3 destination, kernel-copy staging" "$W/data" "s3://$CKPT_TEST_BUCKET/bench-async-$$"

if command -v mkfs.xfs >/dev/null && [ "$(id -u)" = 0 ]; then
  truncate -s 4G "$W/xfs.img"
  mkfs.xfs -q -m reflink=1 "$W/xfs.img"
  mkdir -p "$W/xfs"
  mount -o loop "$W/xfs.img" "$W/xfs"
  XFS=$W/xfs
  make_data "$XFS/data"
  measure "local destination, reflink staging (XFS)" "$XFS/data" "$W/dest-xfs"
else
  echo "(no XFS case: needs root and mkfs.xfs; apt-get install xfsprogs)"
fi

echo "== flat layout: a save into a destination that holds a checkpoint (staged + published)"
for target in "$W/flat" "s3://$CKPT_TEST_BUCKET/bench-flat-$$"; do
  fresh=() again=()
  for r in 1 2 3; do
    sync
    t0=$(now); "$CKPT" save -q --dest "$target-$r" "$W/data"; t1=$(now); fresh+=("$(ms "$t0" "$t1")")
    sync
    t0=$(now); "$CKPT" save -q --dest "$target-$r" "$W/data"; t1=$(now); again+=("$(ms "$t0" "$t1")")
  done
  f=$(median "${fresh[@]}")
  a=$(median "${again[@]}")
  printf '%-44s empty %6s ms   replacing %6s ms   ratio %s\n' "${target%%/bench*}" "$f" "$a" "$(ratio "$a" "$f")"
done
# Baseline for the local case: replacing files by copy + rename costs this filesystem the same
# (ext4 flushes a file renamed over another, and frees the old one's blocks).
base_fresh=() base_again=()
for r in 1 2 3; do
  rm -rf "$W/cpmv" && mkdir -p "$W/cpmv/t" "$W/cpmv/d"
  sync
  t0=$(now); cp "$W"/data/* "$W/cpmv/t/" && mv "$W"/cpmv/t/* "$W/cpmv/d/"; t1=$(now); base_fresh+=("$(ms "$t0" "$t1")")
  sync
  t0=$(now); cp "$W"/data/* "$W/cpmv/t/" && mv "$W"/cpmv/t/* "$W/cpmv/d/"; t1=$(now); base_again+=("$(ms "$t0" "$t1")")
done
f=$(median "${base_fresh[@]}")
a=$(median "${base_again[@]}")
printf '%-44s empty %6s ms   replacing %6s ms   ratio %s\n' "baseline: cp + mv (local)" "$f" "$a" "$(ratio "$a" "$f")"
echo "(replacing costs, per file, one server-side copy and one delete on object stores; a link"
echo " and a rename locally)"

echo "== S3 requests of a flat save of 8 files (through a counting proxy, no faults)"
/usr/bin/python3 "$ROOT/tests/s3/fault_proxy.py" --upstream "$AWS_ENDPOINT_URL" --rate 0 \
  --port-file "$W/proxy.port" --log "$W/proxy.log" >/dev/null 2>&1 &
PROXY_PID=$!
for _ in $(seq 100); do [ -s "$W/proxy.port" ] && break; sleep 0.1; done
mkdir -p "$W/small"
for i in 1 2 3 4 5 6 7 8; do head -c $((1 << 20)) /dev/urandom >"$W/small/f$i"; done
count() {  # label, then the command
  local label=$1
  shift
  : >"$W/proxy.log"
  "$@"
  printf '%-28s' "$label"
  for m in GET HEAD PUT POST DELETE; do printf ' %s %-3s' "$m" "$(grep -c " $m " "$W/proxy.log" || true)"; done
  echo
}
P=s3://$CKPT_TEST_BUCKET/bench-req-$$
count "into an empty prefix" "$CKPT" save -q --endpoint "http://127.0.0.1:$(cat "$W/proxy.port")" --dest "$P" "$W/small"
count "replacing every file" "$CKPT" save -q --endpoint "http://127.0.0.1:$(cat "$W/proxy.port")" --dest "$P" "$W/small"
echo "(PUT includes the server-side copies: CopyObject is a PUT with x-amz-copy-source)"
