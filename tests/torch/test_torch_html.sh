#!/usr/bin/env bash
# `ckpt inspect --html` writes a self-contained report (flytekit's to_html equivalent): rendered
# here by headless Chromium, whose DOM must show every tensor, the optimizer and the
# hyperparameters, with hostile strings escaped and nothing loaded from outside the file.
set -euo pipefail
: "${CKPT:?}" "${CKPT_SOURCE_DIR:?}"
. "$CKPT_SOURCE_DIR/tests/e2e/lib.sh"
work=$TMP
cd "$work"
chrome=$(command -v chromium || command -v chromium-browser || true)
[ -n "$chrome" ] || fail "chromium is required (apt-get install chromium)"

/usr/bin/python3 - <<'PY'
import torch
m = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.BatchNorm1d(8))
opt = torch.optim.AdamW(m.parameters(), lr=3e-4, weight_decay=0.01)
m(torch.randn(4, 16)).sum().backward(); opt.step()
torch.save({"module_state_dict": m.state_dict(), "epochs": 12, "note": "<script>alert('x')</script> & more",
            "optimizer_state_dict": opt.state_dict()}, "ck.pt")
PY
"$CKPT" inspect --html report.html ck.pt > /dev/null
[ -s report.html ] || fail "no HTML written"
grep -qiE '(src|href)=["'\'']?(https?:)?//' report.html && fail "report loads external resources"
timeout 120 "$chrome" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run \
  --user-data-dir="$work/profile" --dump-dom "file://$work/report.html" > dom.html 2> chrome.log ||
  fail "chromium could not render the report: $(tail -5 chrome.log)"
timeout 120 "$chrome" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run \
  --user-data-dir="$work/profile" --window-size=1200,900 --screenshot="$work/shot.png" \
  "file://$work/report.html" > /dev/null 2>> chrome.log || fail "chromium screenshot failed"
[ "$(stat -c %s shot.png)" -gt 5000 ] || fail "screenshot is empty"
/usr/bin/python3 - <<'PY'
from html.parser import HTMLParser
import torch

class Dom(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.rows, self.scripts, self.text, self.ids = [], {}, 0, [], {}
        self.cur_table, self.cell, self.row = None, None, None
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag == "table":
            self.cur_table = a.get("id", "")
            self.rows.setdefault(self.cur_table, [])
        if tag == "tr":
            self.row = []
        if tag in ("td", "th"):
            self.cell = ""
        if "id" in a:
            self.stack.append(a["id"]); self.ids[a["id"]] = ""
        else:
            self.stack.append(None)
    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.row is not None:
            self.row.append(self.cell); self.cell = None
        if tag == "tr" and self.row is not None:
            self.rows[self.cur_table].append(self.row); self.row = None
        if self.stack:
            self.stack.pop()
    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data
        for i in self.stack:
            if i:
                self.ids[i] += data
        self.text.append(data)

d = Dom()
d.feed(open("dom.html").read())
ck = torch.load("ck.pt")
names = [f"module_state_dict.{k}" for k in ck["module_state_dict"]]
names += [f"optimizer_state_dict.state.{i}.{k}" for i, s in ck["optimizer_state_dict"]["state"].items() for k in s]
rows = d.rows["tensors"][1:]
assert [r[0] for r in rows] == names, ([r[0] for r in rows], names)
first = rows[0]
assert first[1] == "float32" and first[2] == "[8, 16]", first
assert d.scripts == 0, "a <script> element made it into the DOM"
assert "<script>alert('x')</script> & more" in "".join(d.text), "hostile hyperparameter not shown as text"
assert d.ids["optimizer-kind"].strip() == "AdamW", d.ids["optimizer-kind"]
params = sum(t.numel() for t in ck["module_state_dict"].values())
assert d.ids["parameter-count"].strip() == str(params), (d.ids["parameter-count"], params)
hp = {r[0]: r[1] for r in d.rows["hyperparameters"][1:]}
assert set(hp) == {"epochs", "note"} and hp["epochs"] == "12", hp
print("rendered report:", len(rows), "tensors,", params, "parameters, optimizer AdamW")
PY
