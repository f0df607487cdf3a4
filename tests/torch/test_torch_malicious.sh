#!/usr/bin/env bash
# Malicious pickles are never executed: inspect names the globals, decode/encode refuse naming
# them, and the payload's marker file is never created. Finally Python's unrestricted torch.load
# runs one of them, proving the payloads are live.
set -euo pipefail
: "${CKPT:?}" "${CKPT_SOURCE_DIR:?}"
. "$CKPT_SOURCE_DIR/tests/e2e/lib.sh"
work=$TMP
marker="$work/PWNED"

/usr/bin/python3 "$CKPT_SOURCE_DIR/tests/torch/make_malicious.py" "$work/evil" "$marker" > "$work/cases"
[ "$(wc -l < "$work/cases")" -ge 6 ] || fail "corpus generator wrote too few cases"
while read -r file glob; do
  f="$work/evil/$file"
  # inspect: succeeds, reports the global by name, in JSON and in text.
  "$CKPT" inspect --json "$f" > "$work/out.json" 2> "$work/err" || fail "inspect $file failed: $(cat "$work/err")"
  /usr/bin/python3 - "$work/out.json" "$glob" <<'PY' || fail "inspect --json $file does not report $glob"
import json, sys
s = json.load(open(sys.argv[1]))
assert sys.argv[2] in s["unsafe_globals"], s["unsafe_globals"]
PY
  "$CKPT" inspect "$f" > "$work/out.txt" 2>&1 || fail "inspect $file (text) failed"
  grep -qF "$glob" "$work/out.txt" || fail "inspect text of $file does not name $glob"
  # decode and encode: refuse, naming the global.
  mkdir -p "$work/dec"
  if "$CKPT" decode "$f" -o "$work/dec" --force 2> "$work/err"; then fail "decode accepted $file"; fi
  grep -qF "$glob" "$work/err" || fail "decode error for $file does not name $glob: $(cat "$work/err")"
  if "$CKPT" encode -o "$work/enc.pt" --module "$f" 2> "$work/err"; then fail "encode accepted $file"; fi
  grep -qF "$glob" "$work/err" || fail "encode error for $file does not name $glob: $(cat "$work/err")"
  [ ! -e "$work/enc.pt" ] || fail "encode left an output file for $file"
  [ ! -e "$marker" ] || fail "payload of $file was executed"
  echo "ok $file ($glob)"
done < "$work/cases"

# The payloads are real: Python's unrestricted torch.load executes one.
/usr/bin/python3 -c "import torch, sys; torch.load(sys.argv[1])" "$work/evil/os_system.pt" > /dev/null 2>&1 || true
[ -e "$marker" ] || fail "control: the os.system payload did not fire under unrestricted torch.load"
echo "control: unrestricted torch.load executed the payload; ckpt never did"
