#!/usr/bin/env bash
# The C++ training library against Python's torch 1.13, both ways, for SGD (momentum,
# nesterov, weight decay), Adam, Adam with amsgrad and AdamW, with two parameter groups:
# - C++ trains, saves; Python loads with weights_only=True into torch.nn / torch.optim
#   (strict), gets back exactly the file's state_dicts, and one more Python step equals the
#   C++ step saved after it.
# - Python trains and saves (flytekit layout); C++ loads and re-saves: equal to Python's file
#   exactly; one more C++ step equals Python's.
set -euo pipefail
: "${CKPT_SOURCE_DIR:?}" "${CKPT_NATIVE_DRIVER:?}"
PY=/usr/bin/python3
INTEROP=$CKPT_SOURCE_DIR/tests/torch_native/interop.py
. "$CKPT_SOURCE_DIR/tests/e2e/lib.sh"
work=$TMP
cd "$work"

for opt in sgd adam amsgrad adamw; do
  "$CKPT_NATIVE_DRIVER" train "$opt" 3 "c3-$opt.pt" "c4-$opt.pt" || fail "C++ train/save ($opt)"
  $PY "$INTEROP" check-cpp "$opt" "c3-$opt.pt" "c4-$opt.pt" || fail "Python on C++ files ($opt)"

  $PY "$INTEROP" make "$opt" 3 "p3-$opt.pt" "p4-$opt.pt" || fail "Python train/save ($opt)"
  "$CKPT_NATIVE_DRIVER" resume "$opt" "p3-$opt.pt" "r3-$opt.pt" "r4-$opt.pt" > hp.json ||
    fail "C++ load ($opt)"
  [ "$(cat hp.json)" = '{"epoch":3,"note":"from python"}' ] || fail "hyperparameters: $(cat hp.json)"
  $PY "$INTEROP" same "p3-$opt.pt" "r3-$opt.pt" || fail "C++ load + save changed values ($opt)"
  $PY "$INTEROP" close "p4-$opt.pt" "r4-$opt.pt" || fail "C++ step after load differs ($opt)"
done

# A checkpoint written by the library inspects as a PyTorchCheckpoint with its optimizer.
if [ -n "${CKPT:-}" ]; then
  "$CKPT" inspect --json c3-adam.pt > inspect.json
  $PY - <<'PY' || fail "inspect of a C++-written checkpoint"
import json
d = json.load(open("inspect.json"))
assert d["kind"] == "pytorch_checkpoint", d["kind"]
assert d["optimizer"]["kind"] == "Adam", d["optimizer"]
assert d["hyperparameters"]["epoch"] == 3
names = [t["name"] for t in d["tensors"]]
assert "module_state_dict.1.running_mean" in names and "optimizer_state_dict.state.0.exp_avg" in names, names
PY
fi

# Loading refuses a mismatched module and leaves it unchanged; a file without an optimizer
# cannot fill one.
$PY - <<'PY'
import torch
torch.save({"module_state_dict": torch.nn.Linear(3, 3).state_dict(), "epoch": 1}, "wrong.pt")
PY
set +e
"$CKPT_NATIVE_DRIVER" resume adam wrong.pt x.pt y.pt > out 2> err
rc=$?
set -e
[ "$rc" = 1 ] || fail "loading a mismatched module exited $rc"
grep -q "does not match the module" err || fail "message: $(cat err)"
[ ! -e x.pt ] || fail "a failed load still saved"
echo ok
