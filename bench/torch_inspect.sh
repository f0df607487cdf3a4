#!/usr/bin/env bash
# `ckpt inspect` of a 1 GiB checkpoint (64 x 16 MiB float32 tensors, as torch.save writes it)
# against `/usr/bin/python3 -c 'import torch; torch.load(...)'`, same file, same run, warm cache.
# Prints wall-time medians, the ratio, peak RSS of both, and bytes fetched through read_at.
# Usage: bench/torch_inspect.sh [path/to/ckpt]   (default build/ckpt)
set -euo pipefail
CKPT=$(realpath "${1:-$(dirname "$0")/../build/ckpt}")
W=$(mktemp -d "${TMPDIR:-/var/tmp}/ckpt-bench-torch.XXXXXX")
trap 'rm -rf "$W"' EXIT
now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_us() { local t0 t1; t0=$(now); "$@" > /dev/null; t1=$(now); echo $(((t1 - t0) / 1000)); }
peak_kib() { /usr/bin/time -f %M "$@" 2>&1 > /dev/null | tail -1; }

/usr/bin/python3 - "$W/big.pt" <<'PY'
import collections, sys, torch
sd = collections.OrderedDict((f"layer{i}.weight", torch.randn(2048, 2048)) for i in range(64))
torch.save(sd, sys.argv[1])
PY
cat "$W/big.pt" > /dev/null
echo "file: $(du -h "$W/big.pt" | cut -f1) ($(stat -c %s "$W/big.pt") bytes), 64 tensors"
"$CKPT" inspect --json "$W/big.pt" | /usr/bin/python3 -c 'import json,sys; s=json.load(sys.stdin); assert len(s["tensors"])==64 and s["parameter_count"]==64*2048*2048' \
  || { echo "inspect output is wrong" >&2; exit 1; }

ck=$(for _ in $(seq 15); do time_us "$CKPT" inspect --json "$W/big.pt"; done | median)
ck_txt=$(for _ in $(seq 15); do time_us "$CKPT" inspect "$W/big.pt"; done | median)
py=$(for _ in 1 2 3; do time_us /usr/bin/python3 -c 'import sys, torch; torch.load(sys.argv[1])' "$W/big.pt"; done | median)
py_import=$(for _ in 1 2 3; do time_us /usr/bin/python3 -c 'import torch'; done | median)
ck_rss=$(peak_kib "$CKPT" inspect --json "$W/big.pt")
py_rss=$(peak_kib /usr/bin/python3 -c 'import sys, torch; torch.load(sys.argv[1])' "$W/big.pt")
printf '%-44s %10s us  peak %7s KiB\n' "ckpt inspect --json (median of 15)" "$ck" "$ck_rss"
printf '%-44s %10s us\n' "ckpt inspect, text (median of 15)" "$ck_txt"
printf '%-44s %10s us  peak %7s KiB\n' "python3 import torch + torch.load (median of 3)" "$py" "$py_rss"
printf '%-44s %10s us\n' "python3 -c 'import torch' alone (median of 3)" "$py_import"
awk -v a="$ck" -v b="$py" -v c="$py_import" 'BEGIN {
  printf "ratio ckpt inspect / python torch.load      = %.4f (1/%.0f)\n", a / b, b / a
  printf "ratio ckpt inspect / python import torch    = %.4f\n", a / c }'
awk -v a="$ck_rss" -v b="$py_rss" 'BEGIN { printf "peak RSS ckpt / python                     = %.4f\n", a / b }'

# Memory must not grow with tensor bytes: a 4x larger file costs the same RSS.
/usr/bin/python3 - "$W/small.pt" <<'PY'
import collections, sys, torch
torch.save(collections.OrderedDict((f"layer{i}.weight", torch.randn(1024, 1024)) for i in range(64)), sys.argv[1])
PY
small_rss=$(peak_kib "$CKPT" inspect --json "$W/small.pt")
echo "ckpt inspect peak RSS: 256 MiB file ${small_rss} KiB, 1 GiB file ${ck_rss} KiB"
