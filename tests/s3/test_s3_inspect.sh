#!/usr/bin/env bash
# inspect of a remote torch checkpoint reads only the zip directory and the pickle with
# ranged GETs: a 1 GiB checkpoint in s3:// is inspected by transferring well under 1 MiB
# (the byte count --verbose reports), with the same result as inspecting the local file.
. "$CKPT_SOURCE_DIR/tests/e2e/lib.sh"
[ "$BACKEND" = s3 ] || fail "run with CKPT_TEST_BACKEND=s3"

/usr/bin/python3 - "$TMP/model.pt" <<'PY' || fail "torch.save"
import sys, torch
sd = {"encoder.weight": torch.zeros(256 * 1024 * 1024 + 3), "encoder.bias": torch.ones(10),
      "emb": torch.arange(4000, dtype=torch.float64).reshape(1000, 4)}
torch.save({"model_state_dict": sd, "epoch": 7, "hyper_parameters": {"lr": 0.01}}, sys.argv[1])
PY
[ "$(stat -c %s "$TMP/model.pt")" -gt $((1 << 30)) ] || fail "test model is not over 1 GiB"
P=$(loc inspect)
ck 0 save -q --dest "$P" "$TMP/model.pt"
ck 0 inspect --json "$TMP/model.pt"
mv "$TMP/out" "$TMP/local.json"

ck 0 inspect --json --verbose "$P/model.pt"
cmp -s "$TMP/out" "$TMP/local.json" ||
  /usr/bin/python3 - "$TMP/out" "$TMP/local.json" <<'PY' || fail "remote and local inspect differ"
import json, sys
def strip(d):  # where the file is and what was fetched differ, nothing else may
    if isinstance(d, dict):
        return {k: strip(v) for k, v in d.items() if k not in ("uri", "bytes_fetched")}
    if isinstance(d, list):
        return [strip(v) for v in d]
    return d
a, b = (strip(json.load(open(p))) for p in sys.argv[1:])
sys.exit(a != b)
PY
grep -q "encoder.weight" "$TMP/out" || fail "tensor missing from remote inspect"
bytes=$(sed -n 's/.*inspect read \([0-9]*\) bytes.*/\1/p' "$TMP/err" | tail -1)
[ -n "$bytes" ] || fail "--verbose did not report the bytes transferred: $(cat "$TMP/err")"
[ "$bytes" -lt $((1 << 20)) ] || fail "inspect transferred $bytes bytes of a 1 GiB checkpoint"
grep -q "\"bytes_fetched\": *$bytes\b" "$TMP/out" || fail "--json does not report bytes_fetched $bytes"
echo "inspect of a $(stat -c %s "$TMP/model.pt")-byte remote checkpoint transferred $bytes bytes"
echo ok
