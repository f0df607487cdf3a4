#!/usr/bin/env bash
# `ckpt encode` of a 1 GiB module state_dict plus an SGD-momentum optimizer state (another
# 1 GiB of momentum buffers) against Python's torch.save of the same flat PyTorchCheckpoint dict
# (objects already in memory: import and building them not counted; ckpt's time includes its
# process start and reading the part files), same run, warm cache. The two are timed in turns
# (Python as a co-process waiting for its cue), so load from other processes hits both alike;
# before every timed run the previous output is removed and dirty data synced.
# Prints medians, the ratio, and ckpt's peak RSS for this input and for one 4x smaller.
# Usage: bench/torch_encode.sh [path/to/ckpt] [rounds (default 5)]
set -euo pipefail
CKPT=$(realpath "${1:-$(dirname "$0")/../build/ckpt}")
ROUNDS=${2:-5}
W=$(mktemp -d "${TMPDIR:-/var/tmp}/ckpt-bench-torch.XXXXXX")
trap 'rm -rf "$W"' EXIT
now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

cat > "$W/python_side.py" <<'PY'
import os, sys, time, torch
w = sys.argv[1]
def build(n):
    m = torch.nn.ModuleList(torch.nn.Linear(2048, 2048, bias=False) for _ in range(n))
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    for p in m.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    return m, opt
m, opt = build(64)
torch.save(m.state_dict(), f"{w}/module.pt")
torch.save(opt.state_dict(), f"{w}/optimizer.pt")
small, small_opt = build(16)  # a quarter: encode's memory must not grow with tensor bytes
torch.save(small.state_dict(), f"{w}/module_small.pt")
torch.save(small_opt.state_dict(), f"{w}/optimizer_small.pt")
del small, small_opt
ckpt = {"module_state_dict": m.state_dict(), "epochs": 10, "lr": 0.1, "optimizer_state_dict": opt.state_dict()}
print("ready")
for line in sys.stdin:
    if os.path.exists(f"{w}/python.pt"):
        os.remove(f"{w}/python.pt")
    os.sync()  # no writeback of an earlier run inside the timed part
    t0 = time.perf_counter()
    torch.save(ckpt, f"{w}/python.pt")
    print(int((time.perf_counter() - t0) * 1000))
PY
coproc PY { /usr/bin/python3 -u "$W/python_side.py" "$W"; }
read -r ready <&"${PY[0]}"
[ "$ready" = ready ] || { echo "python side failed" >&2; exit 1; }
cat "$W/module.pt" "$W/optimizer.pt" > /dev/null
py_all=() ck_all=()
for _ in $(seq "$ROUNDS"); do
  echo go >&"${PY[1]}"
  read -r ms <&"${PY[0]}"
  py_all+=("$ms")
  rm -f "$W/ckpt.pt"
  sync
  t0=$(now)
  "$CKPT" encode -q -o "$W/ckpt.pt" --module "$W/module.pt" --optimizer "$W/optimizer.pt" --hparam epochs=10 --hparam lr=0.1
  t1=$(now)
  ck_all+=($(((t1 - t0) / 1000000)))
done
exec {PY[1]}>&-
wait "$PY_PID" 2>/dev/null || true
py_ms=$(printf '%s\n' "${py_all[@]}" | median)
ck_ms=$(printf '%s\n' "${ck_all[@]}" | median)
rss=$(/usr/bin/time -f %M "$CKPT" encode -q -o "$W/ckpt.pt" --module "$W/module.pt" --optimizer "$W/optimizer.pt" \
  --hparam epochs=10 --hparam lr=0.1 2>&1 >/dev/null | tail -1)
rss_small=$(/usr/bin/time -f %M "$CKPT" encode -q -o "$W/ckpt_small.pt" --module "$W/module_small.pt" \
  --optimizer "$W/optimizer_small.pt" --hparam epochs=10 2>&1 >/dev/null | tail -1)
/usr/bin/python3 - "$W" <<'PY'
import sys, torch
w = sys.argv[1]
a, b = torch.load(f"{w}/ckpt.pt"), torch.load(f"{w}/python.pt")
assert list(a) == list(b), (list(a), list(b))
assert all(torch.equal(a["module_state_dict"][k], b["module_state_dict"][k]) for k in b["module_state_dict"])
assert all(torch.equal(a["optimizer_state_dict"]["state"][k]["momentum_buffer"], b["optimizer_state_dict"]["state"][k]["momentum_buffer"]) for k in b["optimizer_state_dict"]["state"])
PY
echo "output: $(stat -c %s "$W/ckpt.pt") bytes (python: $(stat -c %s "$W/python.pt")); outputs load equal"
echo "python torch.save runs (ms): ${py_all[*]}"
echo "ckpt encode runs (ms):       ${ck_all[*]}"
printf '%-52s %8s ms\n' "python torch.save of the dict (median of $ROUNDS)" "$py_ms"
printf '%-52s %8s ms  peak RSS %s KiB\n' "ckpt encode from the part files (median of $ROUNDS)" "$ck_ms" "$rss"
awk -v a="$ck_ms" -v b="$py_ms" 'BEGIN { printf "ratio ckpt encode / python torch.save = %.3f\n", a / b }'
echo "ckpt encode peak RSS: 512 MiB of tensors ${rss_small} KiB, 2 GiB of tensors ${rss} KiB"
