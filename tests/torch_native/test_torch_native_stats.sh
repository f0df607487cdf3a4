#!/usr/bin/env bash
# ckpt inspect --stats: per-tensor min/max/mean/std and NaN/Inf counts from the libtorch
# plugin equal torch's own numbers, for every dtype torch 1.13 saves, views, non-contiguous,
# 0-d, empty and multi-million-element tensors; the ckpt binary never links libtorch and
# plain inspect does not load it.
set -euo pipefail
: "${CKPT:?}" "${CKPT_SOURCE_DIR:?}"
PY=/usr/bin/python3
. "$CKPT_SOURCE_DIR/tests/e2e/lib.sh"
work=$TMP
cd "$work"

if ldd "$CKPT" | grep -E "lib(torch|c10)"; then fail "the ckpt binary links libtorch"; fi

$PY - <<'PY'
import math, torch
nan, inf = float("nan"), float("inf")
g = torch.Generator().manual_seed(3)
d = {}
for dt in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
    d[f"f_{dt}"] = torch.tensor([1.5, -2.25, nan, inf, -inf, 0.0, 3.0, nan], dtype=dt)
    d[f"rand_{dt}"] = (torch.randn(7, 9, generator=g) * 10).to(dt)
for dt in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64):
    d[f"i_{dt}"] = torch.arange(-5 if dt != torch.uint8 else 0, 40, 3, dtype=torch.int64).to(dt)
d["i64_big"] = torch.tensor([2**40, -2**41, 7], dtype=torch.int64)
d["bool"] = torch.tensor([True, False, True, True])
d["c64"] = torch.tensor([3 + 4j, complex(nan, 1), complex(inf, 0), -1j, complex(1, inf), 0j], dtype=torch.complex64)
d["c128"] = torch.randn(5, 3, dtype=torch.complex128, generator=g)
base = torch.randn(6, 10, generator=g)
base[2, 3] = nan
d["base"] = base
d["view_row"] = base[2]             # shares storage, offset
d["view_t"] = base.t()              # non-contiguous
d["view_step"] = base[:, ::3]       # strided
d["scalar"] = torch.tensor(2.5)
d["empty"] = torch.zeros(0, 4)
d["one"] = torch.tensor([4.0])
d["all_nan"] = torch.tensor([nan, nan])
big = torch.randn(1500, 2100, generator=g)      # > 1M elements: chunked
big[7, 11] = inf
d["big_t"] = big.t()
d["wide"] = torch.randn(2, 1_200_000, generator=g, dtype=torch.float64)  # rows > 1M each
torch.save(d, "stats.pt")

def ref(t):
    if t.is_complex():
        nanm = torch.isnan(t)
        infm = torch.isinf(t) & ~nanm
        f = t[torch.isfinite(t)].abs().double()
    elif t.is_floating_point():
        nanm, infm = torch.isnan(t), torch.isinf(t)
        f = t[torch.isfinite(t)].double()
    else:
        nanm = infm = torch.zeros(t.shape, dtype=torch.bool)
        f = t.double().flatten()
    out = {"nan": int(nanm.sum()), "inf": int(infm.sum())}
    n = f.numel()
    out["min"] = f.min().item() if n else None
    out["max"] = f.max().item() if n else None
    out["mean"] = f.mean().item() if n else None
    out["std"] = f.std().item() if n > 1 else None
    return out

import json
json.dump({k: ref(v) for k, v in d.items()}, open("expected.json", "w"))
PY

"$CKPT" inspect --stats --json stats.pt > got.json || fail "inspect --stats exited $?"
$PY - <<'PY' || fail "statistics differ from torch's"
import json, math
exp = json.load(open("expected.json"))
got = {t["name"]: t for t in json.load(open("got.json"))["tensors"]}
assert set(got) == set(exp), (set(got) ^ set(exp))
for name, e in exp.items():
    s = got[name].get("stats")
    assert s is not None, (name, got[name])
    for k in ("nan", "inf"):
        assert s[k] == e[k], (name, k, s[k], e[k])
    for k in ("min", "max", "mean", "std"):
        if e[k] is None:
            assert s[k] is None, (name, k, s[k])
        else:
            assert s[k] is not None and math.isclose(s[k], e[k], rel_tol=1e-9, abs_tol=1e-12), (name, k, s[k], e[k])
print("checked", len(exp), "tensors")
PY

# The text table gets a stats column; without --stats there is none.
"$CKPT" inspect --stats stats.pt > text.txt
grep -E '^  all_nan .*min - max - mean - std - nan 2 inf 0$' text.txt >/dev/null || fail "text stats: $(grep all_nan text.txt)"
grep -E '^  f_torch.float32 .*min -2.25 max 3 .* nan 2 inf 2$' text.txt >/dev/null || fail "text stats: $(grep f_torch.float32 text.txt)"
"$CKPT" inspect stats.pt > plain.txt
! grep -q ' nan ' plain.txt || fail "stats shown without --stats"
"$CKPT" inspect --json stats.pt | $PY -c 'import json,sys; assert all("stats" not in t for t in json.load(sys.stdin)["tensors"])' ||
  fail "stats in JSON without --stats"

# The HTML report gets the same columns; a checkpoint location passes --stats to its torch files.
"$CKPT" inspect --stats --html stats.html stats.pt > /dev/null || fail "inspect --stats --html"
$PY - <<'PY' || fail "HTML statistics"
from html.parser import HTMLParser
class T(HTMLParser):
    rows, row, cell = [], None, None
    def handle_starttag(self, tag, a):
        if tag == "tr": self.row = []
        if tag in ("td", "th"): self.cell = ""
    def handle_endtag(self, tag):
        if tag in ("td", "th"): self.row.append(self.cell); self.cell = None
        if tag == "tr": self.rows.append(self.row)
    def handle_data(self, d):
        if self.cell is not None: self.cell += d
t = T(); t.feed(open("stats.html").read())
rows = {r[0]: r for r in t.rows}
assert rows["name"][4:] == ["min", "max", "mean", "std", "NaN", "Inf"], rows["name"]
assert rows["all_nan"][4:] == ["-", "-", "-", "-", "2", "0"], rows["all_nan"]
assert rows["f_torch.float32"][4:6] == ["-2.25", "3"] and rows["f_torch.float32"][8:] == ["2", "2"], rows["f_torch.float32"]
PY
"$CKPT" save -q --checkpoint-path "$work/dest" stats.pt || fail "save"
"$CKPT" inspect --stats --json "$work/dest" > loc.json || fail "inspect --stats of a location"
$PY - <<'PY' || fail "location statistics"
import json
exp = json.load(open("expected.json"))
f = json.load(open("loc.json"))["files"][0]
got = {t["name"]: t["stats"] for t in f["torch"]["tensors"]}
assert got.keys() == exp.keys() and got["all_nan"]["nan"] == 2 and got["bool"]["mean"] == exp["bool"]["mean"], got["bool"]
PY

# Plain inspect never loads libtorch (the plugin's start-up cost is for --stats alone).
LD_DEBUG=files "$CKPT" inspect stats.pt 2> lddebug.txt > /dev/null
! grep -q 'libtorch' lddebug.txt || fail "plain inspect loaded libtorch"
LD_DEBUG=files "$CKPT" inspect --stats stats.pt 2> lddebug.txt > /dev/null
grep -q 'ckpt-torchstats' lddebug.txt || fail "inspect --stats did not load the plugin"

# A corrupted tensor record is reported, not summarised.
$PY - <<'PY'
import zipfile
data = bytearray(open("stats.pt", "rb").read())
z = zipfile.ZipFile("stats.pt")
info = z.getinfo("stats/data/0")
# Local header: 30 bytes + name + extra, then the data.
import struct
n, m = struct.unpack("<HH", data[info.header_offset + 26: info.header_offset + 30])
start = info.header_offset + 30 + n + m
data[start] ^= 0xFF
open("bad.pt", "wb").write(data)
PY
set +e
"$CKPT" inspect --stats bad.pt > out 2> err
rc=$?
set -e
[ "$rc" = 5 ] || fail "inspect --stats of a corrupt record exited $rc: $(cat err)"
echo ok
