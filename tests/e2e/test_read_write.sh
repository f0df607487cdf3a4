#!/usr/bin/env bash
# Single-blob checkpoints: write replaces <dest>/_dst_cp, read returns exactly one file.
. "$(dirname "$0")/lib.sh"

B=$(loc blob)
printf 'first' | "$CKPT" write --dest "$B" || fail "write from stdin"
printf 'second version' >"$TMP/in"
ck 0 write --dest "$B" "$TMP/in"
ck 0 read --src "$B"
[ "$(cat "$TMP/out")" = "second version" ] || fail "read did not return the last write"
ck 0 read --src "$B" -o "$TMP/copy"
cmp "$TMP/in" "$TMP/copy" || fail "read -o"

# Binary-safe.
head -c 100000 /dev/urandom >"$TMP/bin"
ck 0 write --dest "$B" "$TMP/bin"
"$CKPT" read --src "$B" >"$TMP/bin.back" || fail "read binary"
cmp "$TMP/bin" "$TMP/bin.back" || fail "binary round trip"

# More than one file: flytekit's error, and nothing on stdout.
M=$(loc multi)
mkdir -p "$TMP/two" && echo a >"$TMP/two/a" && echo b >"$TMP/two/b"
ck 0 save --dest "$M" "$TMP/two"
ck 1 read --src "$M"
assert_contains "$TMP/err" "Expected exactly one checkpoint - found 2"
[ ! -s "$TMP/out" ] || fail "read wrote data despite the error"

# read -o of a corrupt blob leaves no file behind; to stdout it exits 5.
C=$(loc corrupt)
printf 'good data' | "$CKPT" write --dest "$C"
printf 'evil data' >"$TMP/evil" && store_put "$C" _dst_cp "$TMP/evil"
ck 5 read --src "$C" -o "$TMP/never"
[ ! -e "$TMP/never" ] || fail "corrupt read produced an output file"
assert_contains "$TMP/err" "_dst_cp"
ck 5 read --src "$C"

# To stdout appending to a file (>>): the bytes go after what is there.
printf 'before\n' >"$TMP/appended"
"$CKPT" read --src "$B" >>"$TMP/appended" || fail "read >> file"
{ printf 'before\n'; cat "$TMP/bin"; } | cmp - "$TMP/appended" || fail "read >> file lost or misplaced bytes"

# Not configured / nothing there.
ck 3 read --src '""'
ck 3 read
ck 4 read --src "$(loc empty)"
echo ok
