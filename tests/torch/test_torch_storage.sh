#!/usr/bin/env bash
# encode, decode, literal and inspect against checkpoint locations rather than local paths:
# OUT of encode may be any location ckpt can write, inputs any it can read. Runs on local disk
# (torch_test_torch_storage) and against the S3 test server (torch_s3_storage,
# CKPT_TEST_BACKEND=s3), through tests/e2e/lib.sh's loc.
. "$CKPT_SOURCE_DIR/tests/e2e/lib.sh"
cd "$TMP"

/usr/bin/python3 - <<'PY' || fail "torch.save"
import torch
torch.manual_seed(1)
m = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 3))
opt = torch.optim.Adam(m.parameters(), lr=0.01)
m(torch.randn(5, 6)).sum().backward(); opt.step()
torch.save(m.state_dict(), "sd.pt")
torch.save(opt.state_dict(), "opt.pt")
PY
D=$(loc torch)
[ "$BACKEND" = local ] && mkdir -p "$D"

# Parts stored in the location (as a training job's checkpoint would hold them) are read from it.
ck 0 save -q --dest "$D/parts" sd.pt
ck 0 save -q --dest "$D/parts" opt.pt
ck 0 encode -o "$D/model.pt" --module "$D/parts/sd.pt" --optimizer "$D/parts/opt.pt" --hparam epochs=3
[ "$(store_cat "$D" model.pt | head -c 2)" = PK ] || fail "encode did not write $D/model.pt"

ck 0 inspect --json "$D/model.pt"
/usr/bin/python3 - "$TMP/out" <<'PY' || fail "inspect of the written checkpoint"
import json, sys, torch
d = json.load(open(sys.argv[1]))
sd = torch.load("sd.pt")
assert d["kind"] == "pytorch_checkpoint" and d["hyperparameters"] == {"epochs": 3}, d["kind"]
assert d["optimizer"]["kind"] == "Adam", d["optimizer"]
names = [t["name"] for t in d["tensors"] if t["name"].startswith("module_state_dict.")]
assert names == [f"module_state_dict.{k}" for k in sd], names
PY

ck 0 literal "$D/model.pt"
[ "$(json_get "$TMP/out" '["scalar"]["blob"]["uri"]')" = "$D/model.pt" ] || fail "literal uri: $(cat "$TMP/out")"

mkdir parts
ck 0 decode "$D/model.pt" -o parts
/usr/bin/python3 - <<'PY' || fail "decoded parts differ from the originals"
import json, torch
sd, got = torch.load("sd.pt"), torch.load("parts/module_state_dict.pt", weights_only=True)
assert list(sd) == list(got) and all(torch.equal(sd[k], got[k]) for k in sd)
opt, got_opt = torch.load("opt.pt"), torch.load("parts/optimizer_state_dict.pt")
assert got_opt["param_groups"] == opt["param_groups"]
assert all(torch.equal(opt["state"][i][k], got_opt["state"][i][k]) for i in opt["state"] for k in opt["state"][i])
assert json.load(open("parts/hyperparameters.json")) == {"epochs": 3}
PY

# A location that is not there: a clear error, nothing written.
ck 1 encode -o "$D/x.pt" --module "$D/parts/missing.pt"
[ -z "$(store_keys "$D" | grep -x x.pt || true)" ] || fail "a failed encode left x.pt"
echo ok
