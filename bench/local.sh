#!/usr/bin/env bash
# Local benchmarks, with baselines measured in the same run:
#  1. start-up: `ckpt exists` and `ckpt read` of a small blob vs /bin/true and python3 -c pass
#  2. save and restore of a 1 GiB directory of 8 files vs `cp -r` of the same data
# Usage: bench/local.sh [path/to/ckpt]   (default build/ckpt). Warm page cache for all.
set -euo pipefail
CKPT=${1:-$(dirname "$0")/../build/ckpt}
CKPT=$(realpath "$CKPT")
W=$(mktemp -d "${TMPDIR:-/var/tmp}/ckpt-bench.XXXXXX")
trap 'rm -rf "$W"' EXIT

now() { date +%s%N; }
# mean wall time of N runs of a command, in microseconds
per_call_us() {
  local n=$1
  shift
  local t0 t1
  t0=$(now)
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 || true; done
  t1=$(now)
  echo $(((t1 - t0) / n / 1000))
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "== start-up (mean of 200 runs each)"
mkdir -p "$W/small"
echo '{"epoch": 1}' >"$W/small/meta.json"
"$CKPT" save -q --dest "$W/ck" "$W/small"
printf 'blob' | "$CKPT" write -q --dest "$W/blob"
t_true=$(per_call_us 200 /bin/true)
t_py=$(per_call_us 50 /usr/bin/python3 -c pass)
t_exists=$(per_call_us 200 "$CKPT" exists -q --src "$W/ck")
t_read=$(per_call_us 200 "$CKPT" read --src "$W/blob")
printf '%-28s %8s us\n' "/bin/true" "$t_true" "/usr/bin/python3 -c pass" "$t_py" \
  "ckpt exists" "$t_exists" "ckpt read (small blob)" "$t_read"
echo "ckpt exists / true = $(ratio "$t_exists" "$t_true")   ckpt exists / python = $(ratio "$t_exists" "$t_py")"
echo "ckpt read   / true = $(ratio "$t_read" "$t_true")   ckpt read   / python = $(ratio "$t_read" "$t_py")"

echo "== 1 GiB directory of 8 files (median of 3, warm cache)"
mkdir -p "$W/data"
for i in 1 2 3 4 5 6 7 8; do head -c $((128 << 20)) /dev/urandom >"$W/data/shard$i.bin"; done
cat "$W"/data/* >/dev/null
median() { sort -n | sed -n 2p; }
# "wall_ms cpu_ms" of one run (cpu = user + system, less sensitive to a busy machine)
measure() {
  /usr/bin/time -f '%e %U %S' -o "$W/t" "$@" >/dev/null
  awk '{ printf "%d %d\n", $1 * 1000, ($2 + $3) * 1000 }' "$W/t"
}
declare -A wall cpu
for r in 1 2 3; do
  rm -rf "$W/cp" "$W/dst" "$W/rest" && mkdir "$W/rest"
  sync
  read -r w c < <(measure cp -r "$W/data" "$W/cp"); wall[cp]+="$w "; cpu[cp]+="$c "
  sync
  read -r w c < <(measure "$CKPT" save -q --dest "$W/dst" "$W/data"); wall[save]+="$w "; cpu[save]+="$c "
  sync
  read -r w c < <(measure "$CKPT" restore -q --src "$W/dst" "$W/rest"); wall[restore]+="$w "; cpu[restore]+="$c "
  diff -r "$W/data" "$W/rest" >/dev/null || { echo "restore differs" >&2; exit 1; }
done
med() { printf '%s\n' $1 | median; }
printf '%-28s %10s %10s\n' "" "wall ms" "cpu ms"
for k in cp save restore; do printf '%-28s %10s %10s\n' "$k" "$(med "${wall[$k]}")" "$(med "${cpu[$k]}")"; done
for k in save restore; do
  echo "$k / cp -r: wall $(ratio "$(med "${wall[$k]}")" "$(med "${wall[cp]}")"), cpu $(ratio "$(med "${cpu[$k]}")" "$(med "${cpu[cp]}")")"
done
