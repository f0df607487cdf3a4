#!/usr/bin/env bash
# ckpt encode / decode / literal and torch-file errors as a shell user meets them: exit codes,
# messages, typed --hparam values, no clobbering, atomic output, legacy/truncated/corrupt files.
set -euo pipefail
: "${CKPT:?}" "${CKPT_SOURCE_DIR:?}"
. "$CKPT_SOURCE_DIR/tests/e2e/lib.sh"
work=$TMP
cd "$work"
expect_exit() {  # expect_exit CODE PATTERN -- command...
  local want=$1 pattern=$2; shift 3
  set +e; "$@" > out 2> err; local got=$?; set -e
  [ "$got" = "$want" ] || fail "'$*' exited $got, want $want; stderr: $(cat err)"
  [ -z "$pattern" ] || grep -qiE "$pattern" err || fail "'$*' stderr lacks /$pattern/: $(cat err)"
}

/usr/bin/python3 - <<'PY'
import torch
m = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
m(torch.randn(2, 4)).sum().backward(); opt.step()
torch.save(m.state_dict(), "sd.pt")
torch.save(opt.state_dict(), "opt.pt")
torch.save(m.state_dict(), "legacy.pt", _use_new_zipfile_serialization=False)
PY

# encode: typed hyperparameters, flytekit key order, loads back with the values' Python types.
echo '{"epochs": 3, "name": "from-file", "betas": [0.9, 0.99]}' > hp.json
"$CKPT" encode -o out.pt --module sd.pt --optimizer opt.pt --hparams hp.json \
  --hparam lr=0.5 --hparam epochs=7 --hparam tag=run-1 --hparam flag=true --hparam none=null
ls -a | grep '\.tmp-' >/dev/null && fail "encode left a temporary file"
/usr/bin/python3 - <<'PY'
import torch
sd = torch.load("sd.pt")
d = torch.load("out.pt")  # written by ckpt; malicious-pickle safety is tested elsewhere
assert list(d) == ["module_state_dict", "epochs", "name", "betas", "lr", "tag", "flag", "none",
                   "optimizer_state_dict"], list(d)
assert d["epochs"] == 7 and type(d["epochs"]) is int
assert d["lr"] == 0.5 and type(d["lr"]) is float
assert d["tag"] == "run-1" and d["flag"] is True and d["none"] is None and d["betas"] == [0.9, 0.99]
assert all(torch.equal(sd[k], d["module_state_dict"][k]) for k in sd)
assert d["optimizer_state_dict"]["param_groups"][0]["momentum"] == 0.9
PY

# A module-only checkpoint holds no float, so even torch 1.13's weights_only loader takes it.
"$CKPT" encode -o module_only.pt --module sd.pt
/usr/bin/python3 -c "import torch; d = torch.load('module_only.pt', weights_only=True); assert list(d) == ['module_state_dict']"

# To stdout.
"$CKPT" encode -o - --module sd.pt --hparam seed=1 > piped.pt
/usr/bin/python3 -c "import torch; assert torch.load('piped.pt')['seed'] == 1"

# Usage errors: nothing to encode, reserved names, malformed --hparam, missing input.
expect_exit 2 "at least one" -- "$CKPT" encode -o x.pt
expect_exit 2 "reserved" -- "$CKPT" encode -o x.pt --module sd.pt --hparam module_state_dict=1
expect_exit 2 "KEY=VALUE" -- "$CKPT" encode -o x.pt --hparam novalue
expect_exit 1 "missing.pt|no such" -- "$CKPT" encode -o x.pt --module missing.pt
[ ! -e x.pt ] || fail "a failed encode left x.pt"

# decode: the parts, no clobbering without --force.
mkdir parts
"$CKPT" decode out.pt -o parts --json > decode.json
for f in module_state_dict.pt optimizer_state_dict.pt hyperparameters.json; do
  [ -s "parts/$f" ] || fail "decode did not write $f"
done
/usr/bin/python3 - <<'PY'
import json, torch
hp = json.load(open("parts/hyperparameters.json"))
assert hp == {"epochs": 7, "name": "from-file", "betas": [0.9, 0.99], "lr": 0.5, "tag": "run-1",
              "flag": True, "none": None}, hp
sd = torch.load("parts/module_state_dict.pt", weights_only=True)
orig = torch.load("sd.pt")
assert list(sd) == list(orig) and all(torch.equal(sd[k], orig[k]) for k in sd)
assert sd._metadata == orig._metadata
PY
expect_exit 1 "exists.*--force" -- "$CKPT" decode out.pt -o parts
"$CKPT" decode out.pt -o parts --force
expect_exit 2 "does not exist" -- "$CKPT" decode out.pt -o no-such-dir

# literal and literal --type: exactly flytekit's blob literal, in proto3 JSON.
[ "$("$CKPT" literal --type)" = '{"blob":{"format":"PyTorchCheckpoint","dimensionality":"SINGLE"}}' ] ||
  fail "literal --type: $("$CKPT" literal --type)"
want="{\"scalar\":{\"blob\":{\"metadata\":{\"type\":{\"format\":\"PyTorchCheckpoint\",\"dimensionality\":\"SINGLE\"}},\"uri\":\"$work/out.pt\"}}}"
[ "$("$CKPT" literal out.pt)" = "$want" ] || fail "literal: $("$CKPT" literal out.pt)"
[ "$("$CKPT" literal --no-check s3://bucket/a/b.pt | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["scalar"]["blob"]["uri"])')" = "s3://bucket/a/b.pt" ] ||
  fail "literal keeps remote URIs"
echo "not a torch file" > plain.txt
expect_exit 2 "not a torch" -- "$CKPT" literal plain.txt
expect_exit 1 "" -- "$CKPT" literal missing.pt

# Legacy, truncated and corrupted files: clear errors, right exit codes.
expect_exit 1 "legacy.*1\.6" -- "$CKPT" decode legacy.pt -o parts --force
expect_exit 1 "legacy" -- "$CKPT" inspect legacy.pt
size=$(stat -c %s out.pt)
head -c $((size - 10)) out.pt > truncated.pt
expect_exit 5 "truncated|end of central directory" -- "$CKPT" inspect truncated.pt
head -c $((size / 2)) out.pt > half.pt
expect_exit 5 "" -- "$CKPT" decode half.pt -o parts --force
# Flip one byte inside a tensor: inspect (metadata only) still works; decode's CRC check refuses.
/usr/bin/python3 - <<'PY'
import zipfile
z = zipfile.ZipFile("out.pt")
info = [i for i in z.infolist() if "/data/" in i.filename][0]
data = bytearray(open("out.pt", "rb").read())
off = info.header_offset + 30 + len(info.filename.encode()) + int.from_bytes(data[info.header_offset + 28:info.header_offset + 30], "little")
data[off] ^= 0xFF
open("corrupt.pt", "wb").write(bytes(data))
PY
"$CKPT" inspect --json corrupt.pt > /dev/null || fail "inspect of a file with a corrupted tensor byte failed"
expect_exit 5 "CRC" -- "$CKPT" decode corrupt.pt -o parts --force
echo "all torch CLI checks passed"
