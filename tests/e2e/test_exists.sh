#!/usr/bin/env bash
# exists: 0 only for a complete checkpoint; 3 not configured; 4 nothing there; 5 incomplete.
. "$(dirname "$0")/lib.sh"

for unset in '' '""' "''" '{{.prevCheckpointPrefix}}' '{{.checkpointOutputPrefix}}'; do
  ck 3 exists --prev-checkpoint "$unset"
  assert_contains "$TMP/out" "configured: no"
done
ck 3 exists
ck 3 exists --json
[ "$(json_get "$TMP/out" '["configured"]')" = False ] || fail "json configured"

ck 4 exists --src "$(loc nothing)"
assert_contains "$TMP/out" "configured: yes"
assert_contains "$TMP/out" "state: missing"

E=$(loc e)
mkdir -p "$TMP/src" && mkfile "$TMP/src/a" 64 && mkfile "$TMP/src/b" 64
ck 0 save --dest "$E" "$TMP/src"
ck 0 exists --src "$E"
assert_contains "$TMP/out" "state: complete"
ck 0 exists --src "$E" --json
[ "$(json_get "$TMP/out" '["state"]')" = complete ] || fail "json state"
[ "$(json_get "$TMP/out" '["files"]')" = 2 ] || fail "json files"
[ "$(json_get "$TMP/out" '["verified"]')" = True ] || fail "json verified"

# Truncated: exit 5 naming the file.
head -c 1000 "$TMP/src/a" >"$TMP/trunc" && store_put "$E" a "$TMP/trunc"
ck 5 exists --src "$E"
assert_contains "$TMP/out" "wrong size: a"
assert_contains "$TMP/err" "wrong size a"
ck 5 exists --src "$E" --json
[ "$(json_get "$TMP/out" '["state"]')" = incomplete ] || fail "json incomplete"

# Altered, same size: only a checksum tells; --quick checks sizes only.
store_put "$E" a "$TMP/src/a"
ck 0 exists --src "$E"
mkfile "$TMP/other" 64 && store_put "$E" b "$TMP/other"
ck 5 exists --src "$E"
assert_contains "$TMP/err" "checksum"
ck 0 exists --src "$E" --quick

# Missing file.
store_put "$E" b "$TMP/src/b"
store_rm "$E" a
ck 5 exists --src "$E"
assert_contains "$TMP/out" "missing: a"

# A flytekit-written checkpoint (plain files, no manifest) exists, reported as unverified.
U=$(loc flytekit)
store_put "$U" model.pt "$TMP/src/a"
ck 0 exists --src "$U"
assert_contains "$TMP/out" "unverified"
echo ok
