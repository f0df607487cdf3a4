#!/usr/bin/env bash
# Progress bar only on a terminal (uploads and downloads, on every backend); colour only on
# a terminal and without NO_COLOR; inspect --json for scripts.
. "$(dirname "$0")/lib.sh"
command -v script >/dev/null || fail "script(1) from util-linux is needed"

mkdir -p "$TMP/src"
# The bar is first drawn after 100 ms: local copies need more data than S3 to last that long.
mib=96
[ "$BACKEND" = local ] && mib=384
for i in 1 2 3 4; do head -c $((mib << 20)) /dev/zero >"$TMP/src/f$i"; done

# stderr not a terminal: no bar, no escape codes.
"$CKPT" save --dest "$TMP/a" "$TMP/src" 2>"$TMP/err.txt" || fail "save"
if grep -q $'\r' "$TMP/err.txt" || grep -q $'\033\[' "$TMP/err.txt"; then fail "bar or colour on a file"; fi

# A terminal (script(1) gives ckpt a pty): the bar shows bytes, rate and ETA, for the upload
# and for the download.
B=$(loc b)
script -qfec "timeout 300 env -u NO_COLOR $CKPT save --dest $B $TMP/src" /dev/null >"$TMP/tty.txt" || fail "save on a tty"
assert_contains "$TMP/tty.txt" "ETA"
grep -qE "[KMG]iB/s" "$TMP/tty.txt" || fail "no transfer rate on a tty: $(cat "$TMP/tty.txt")"
mkdir "$TMP/back"
script -qfec "timeout 300 env -u NO_COLOR $CKPT restore --src $B $TMP/back" /dev/null >"$TMP/tty2.txt" || fail "restore on a tty"
assert_contains "$TMP/tty2.txt" "ETA"
grep -qE "[KMG]iB/s" "$TMP/tty2.txt" || fail "no transfer rate on a tty: $(cat "$TMP/tty2.txt")"
assert_same_tree "$TMP/src" "$TMP/back"
# Colour on a terminal, none with NO_COLOR.
script -qfec "env -u NO_COLOR $CKPT restore --src $B $TMP/nonexistent" /dev/null >"$TMP/c1.txt" || true
grep -q $'\033\[' "$TMP/c1.txt" || fail "no colour on a terminal"
script -qfec "env NO_COLOR=1 $CKPT restore --src $B $TMP/nonexistent" /dev/null >"$TMP/c2.txt" || true
assert_contains "$TMP/c2.txt" "directory only"
if grep -q $'\033\[' "$TMP/c2.txt"; then fail "colour despite NO_COLOR"; fi
# -q silences the bar even on a terminal.
script -qfec "$CKPT save -q --dest $TMP/c $TMP/src" /dev/null >"$TMP/q.txt" || fail "quiet save"
[ ! -s "$TMP/q.txt" ] || fail "quiet save printed: $(cat "$TMP/q.txt")"

# inspect --json of a location, for jq-style use.
ck 0 inspect --json "$TMP/a"
[ "$(json_get "$TMP/out" '["state"]')" = complete ] || fail "inspect state"
[ "$(json_get "$TMP/out" '["files"][0]["key"]')" = f1 ] || fail "inspect files"
[ "$(json_get "$TMP/out" '["bytes"]')" = $((4 * mib << 20)) ] || fail "inspect bytes"
ck 4 inspect "$TMP/never"
echo ok
