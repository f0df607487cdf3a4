#!/usr/bin/env bash
# Layout compatibility with flytekit's SyncCheckpoint on s3://, both ways. flytekit cannot
# be installed here, so tests/s3/flytekit_s3_checkpoint.py reproduces the objects flytekit
# writes through s3fs (plain objects under the prefix, no manifest) and how it restores.
. "$CKPT_SOURCE_DIR/tests/e2e/lib.sh"
[ "$BACKEND" = s3 ] || fail "run with CKPT_TEST_BACKEND=s3"
FK="/usr/bin/python3 $CKPT_SOURCE_DIR/tests/s3/flytekit_s3_checkpoint.py"

mkdir -p "$TMP/src/sub/deeper"
mkfile "$TMP/src/model.pt" 2048
mkfile "$TMP/src/sub/opt.pt" 30
echo '{"lr": 0.1}' >"$TMP/src/sub/deeper/h.json"
echo "x" >"$TMP/src/name with space+plus.txt"

# flytekit wrote it -> ckpt sees it, restores it (unverified: no manifest), reads a blob.
FKD=$(loc fk)
$FK save "$FKD" "$TMP/src" || fail "flytekit-style save"
ck 0 exists --src "$FKD"
assert_contains "$TMP/out" "unverified"
mkdir "$TMP/r"
ck 0 restore --src "$FKD" "$TMP/r" --json
[ "$(json_get "$TMP/out" '["verified"]')" = False ] || fail "claimed verified without a manifest"
assert_same_tree "$TMP/src" "$TMP/r"
[ -z "$(store_keys "$FKD" | grep '^\.ckpt/')" ] || fail "restore wrote to the source prefix"
FKB=$(loc fkblob)
$FK write "$FKB" "blob bytes" || fail "flytekit-style write"
ck 0 read --src "$FKB"
[ "$(cat "$TMP/out")" = "blob bytes" ] || fail "read of a flytekit write"
# flytekit's single-file save -> <dest>/<name>; ckpt read returns it.
FKF=$(loc fkfile)
$FK save "$FKF" "$TMP/src/sub/opt.pt"
ck 0 read --src "$FKF" -o "$TMP/opt.back"
cmp "$TMP/src/sub/opt.pt" "$TMP/opt.back" || fail "read of a flytekit single-file save"
ck 1 read --src "$FKD"
assert_contains "$TMP/err" "Expected exactly one checkpoint - found 4"

# ckpt wrote it -> flytekit restores the same files (plus the documented .ckpt/ folder).
CK=$(loc ck)
ck 0 save --dest "$CK" "$TMP/src"
store_keys "$CK" | grep -v '^\.ckpt/' >"$TMP/keys"
(cd "$TMP/src" && find . -type f | sed 's|^\./||' | LC_ALL=C sort) >"$TMP/want"
diff "$TMP/want" "$TMP/keys" >/dev/null || fail "object keys differ from flytekit's: $(cat "$TMP/keys")"
$FK restore "$CK" "$TMP/fkr" || fail "flytekit-style restore of a ckpt save"
rm -rf "$TMP/fkr/.ckpt"
assert_same_tree "$TMP/src" "$TMP/fkr"
# write --no-manifest leaves exactly flytekit's layout, so flytekit's read() works.
CKB=$(loc ckblob)
printf 'one blob' | "$CKPT" write -q --no-manifest --dest "$CKB" || fail "write --no-manifest"
[ "$(store_keys "$CKB")" = _dst_cp ] || fail "write --no-manifest stored: $(store_keys "$CKB")"
[ "$($FK read "$CKB")" = "one blob" ] || fail "flytekit read of ckpt write --no-manifest"
# ckpt's stream save is flytekit's _dst_cp too.
CKS=$(loc ckstream)
"$CKPT" save -q --dest "$CKS" - <"$TMP/src/model.pt" || fail "stream save"
$FK restore "$CKS" "$TMP/fks" || fail "flytekit restore of a stream save"
cmp "$TMP/src/model.pt" "$TMP/fks/_dst_cp" || fail "stream save is not flytekit's _dst_cp"
echo ok
