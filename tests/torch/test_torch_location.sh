#!/usr/bin/env bash
# `ckpt inspect LOCATION` of a checkpoint location (what `ckpt save` wrote): lists its files and
# inspects every torch file in it, in JSON and in text; a file that looks like a torch file but
# is not readable as one is named with the reason, never silently skipped; --html asks for one
# file. Expected names come from Python's own view of the saved objects.
set -euo pipefail
: "${CKPT:?}" "${CKPT_SOURCE_DIR:?}"
. "$CKPT_SOURCE_DIR/tests/e2e/lib.sh"
work=$TMP
cd "$work"

mkdir -p src/sub
/usr/bin/python3 - <<'PY'
import json, torch
torch.manual_seed(0)
m = torch.nn.Sequential(torch.nn.Linear(5, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
m(torch.randn(4, 5)).sum().backward(); opt.step()
torch.save({"module_state_dict": m.state_dict(), "epoch": 4, "optimizer_state_dict": opt.state_dict()},
           "src/model.pt")
torch.save(opt.state_dict(), "src/sub/opt.pt")
open("src/notes.txt", "w").write("not a torch file\n")
good = open("src/model.pt", "rb").read()
open("src/broken.pt", "wb").write(good[: len(good) // 2])  # zip magic, no central directory
want = {
    "model.pt": [f"module_state_dict.{k}" for k in m.state_dict()]
    + [f"optimizer_state_dict.state.{i}.momentum_buffer" for i in opt.state_dict()["state"]],
    "sub/opt.pt": [f"state.{i}.momentum_buffer" for i in opt.state_dict()["state"]],
}
json.dump(want, open("want.json", "w"))
PY
"$CKPT" save -q --checkpoint-path "$work/dest" src || fail "save"

"$CKPT" inspect --json "$work/dest" > loc.json || fail "inspect --json of the location exited $?"
/usr/bin/python3 - <<'PY' || fail "inspect --json of a location"
import json
d = json.load(open("loc.json"))
want = json.load(open("want.json"))
files = {f["key"]: f for f in d["files"]}
assert d["state"] == "complete", d["state"]
assert set(files) == {"model.pt", "sub/opt.pt", "notes.txt", "broken.pt"}, sorted(files)
for key, names in want.items():
    assert "torch" in files[key], (key, files[key])
    got = [t["name"] for t in files[key]["torch"]["tensors"]]
    assert got == names, (key, got, names)
t = files["model.pt"]["torch"]
assert t["kind"] == "pytorch_checkpoint" and t["hyperparameters"] == {"epoch": 4}, t["kind"]
assert t["optimizer"]["kind"] == "SGD", t["optimizer"]
assert files["sub/opt.pt"]["torch"]["kind"] == "optimizer_state_dict"
assert "torch" not in files["notes.txt"] and "torch_error" not in files["notes.txt"], files["notes.txt"]
assert "torch" not in files["broken.pt"] and files["broken.pt"].get("torch_error"), files["broken.pt"]
print("location: 4 files, 2 torch files inspected, 1 named as unreadable")
PY

"$CKPT" inspect "$work/dest" > loc.txt || fail "inspect of the location exited $?"
grep -q '^model.pt:$' loc.txt || fail "text: no section for model.pt: $(cat loc.txt)"
grep -q '^sub/opt.pt:$' loc.txt || fail "text: no section for sub/opt.pt"
grep -q '^Kind: *pytorch_checkpoint$' loc.txt || fail "text: model.pt not summarised"
grep -q '^Optimizer: *SGD' loc.txt || fail "text: optimizer not shown"
grep -q 'module_state_dict.2.weight' loc.txt || fail "text: tensor table missing"
grep -q '^broken.pt: not inspected: ' loc.txt || fail "text: broken.pt not named"
! grep -q '^notes.txt:' loc.txt || fail "text: notes.txt inspected as torch"

set +e
"$CKPT" inspect --html r.html "$work/dest" > out 2> err; rc=$?
set -e
[ "$rc" = 2 ] || fail "--html of a location exited $rc"
grep -q 'checkpoint location' err || fail "--html of a location: $(cat err)"
set +e
"$CKPT" inspect --html r.html src/notes.txt > out 2> err; rc=$?
set -e
[ "$rc" = 2 ] || fail "--html of a non-torch file exited $rc"
grep -q 'not a torch checkpoint' err || fail "--html of a non-torch file: $(cat err)"
[ ! -e r.html ] || fail "--html wrote a report for a non-torch target"
echo ok
