#!/usr/bin/env bash
# Layout compatibility with flytekit's SyncCheckpoint, both ways. flytekit cannot be installed
# here (no PyPI), so tests/e2e/flytekit_sync_checkpoint.py reimplements its local-filesystem
# behaviour (flytekit/core/checkpointer.py: save = recursive put, write = _dst_cp, restore =
# recursive get, read = the single entry) to produce and consume the layout.
. "$(dirname "$0")/lib.sh"
[ "$BACKEND" = local ] || { echo "local layout only"; exit 0; }
FK="/usr/bin/python3 $(dirname "$0")/flytekit_sync_checkpoint.py"

# flytekit wrote it -> ckpt restores it (unverified: there is no manifest).
mkdir -p "$TMP/src/sub" && mkfile "$TMP/src/m.pt" 20 && mkfile "$TMP/src/sub/o.pt" 5
$FK save "$TMP/fk" "$TMP/src" || fail "flytekit-style save"
ck 0 exists --src "$TMP/fk"
assert_contains "$TMP/out" "unverified"
mkdir "$TMP/r"
ck 0 restore --src "$TMP/fk" "$TMP/r" --json
[ "$(json_get "$TMP/out" '["verified"]')" = False ] || fail "reported verified without manifest"
assert_same_tree "$TMP/src" "$TMP/r"
$FK write "$TMP/fkblob" "blob bytes"
ck 0 read --src "$TMP/fkblob"
[ "$(cat "$TMP/out")" = "blob bytes" ] || fail "read of flytekit write"

# ckpt wrote it -> flytekit restores the same files (plus the documented .ckpt folder).
ck 0 save --dest "$TMP/ck" "$TMP/src"
$FK restore "$TMP/ck" "$TMP/fkr" || fail "flytekit-style restore"
rm -rf "$TMP/fkr/.ckpt"
assert_same_tree "$TMP/src" "$TMP/fkr"
# With --no-manifest the layout is exactly flytekit's, so even its read() works.
printf 'one blob' | "$CKPT" write --no-manifest --dest "$TMP/ckblob"
[ "$($FK read "$TMP/ckblob")" = "one blob" ] || fail "flytekit read of ckpt write --no-manifest"
[ ! -e "$TMP/ckblob/.ckpt/manifests" ] || [ -z "$(ls -A "$TMP/ckblob/.ckpt/manifests")" ] || fail "manifest written"
echo ok
