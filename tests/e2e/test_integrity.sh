#!/usr/bin/env bash
# A restore never accepts a torn or altered checkpoint, never changes the target when it
# refuses, ignores files no save finished recording, and never writes outside the target.
. "$(dirname "$0")/lib.sh"

P=$(loc p)
mkdir -p "$TMP/src/sub" && mkfile "$TMP/src/a" 100 && mkfile "$TMP/src/sub/b" 100
ck 0 save --dest "$P" "$TMP/src"

# Altered file: exit 5 naming it; the target keeps what it had.
mkdir -p "$TMP/r" && echo precious >"$TMP/r/a"
mkfile "$TMP/evil" 100 && store_put "$P" sub/b "$TMP/evil"
ck 5 restore --src "$P" "$TMP/r"
assert_contains "$TMP/err" "sub/b"
assert_contains "$TMP/err" "checksum"
[ "$(cat "$TMP/r/a")" = precious ] || fail "refused restore changed the target"
[ "$(find "$TMP/r" -mindepth 1 | wc -l)" = 1 ] || fail "refused restore left files: $(find "$TMP/r")"
store_put "$P" sub/b "$TMP/src/sub/b"

# A file no manifest records (an unfinished save) is not handed out.
mkfile "$TMP/stray" 10 && store_put "$P" stray.bin "$TMP/stray"
mkdir "$TMP/r2"
ck 0 restore --src "$P" "$TMP/r2" --json
[ ! -e "$TMP/r2/stray.bin" ] || fail "unrecorded file restored"
assert_contains "$TMP/out" "stray.bin"
assert_same_tree "$TMP/src" "$TMP/r2"

# A damaged manifest: exit 5, naming it.
M=$(loc m)
ck 0 save --dest "$M" "$TMP/src"
mk=$(store_keys "$M" | grep '^\.ckpt/manifests/' | head -1)
store_cat "$M" "$mk" | head -c 40 >"$TMP/torn.json"
store_put "$M" "$mk" "$TMP/torn.json"
mkdir "$TMP/r3"
ck 5 restore --src "$M" "$TMP/r3"
assert_contains "$TMP/err" "manifest"
ck 5 exists --src "$M"

if [ "$BACKEND" = local ]; then
  # A symbolic link inside the target cannot redirect a restore outside it.
  mkdir -p "$TMP/outside" "$TMP/r4"
  ln -s "$TMP/outside" "$TMP/r4/sub"
  ck 5 restore --src "$P" "$TMP/r4"
  assert_contains "$TMP/err" "symbolic link"
  [ -z "$(ls -A "$TMP/outside")" ] || fail "restore wrote through a symlink"
fi
echo ok
