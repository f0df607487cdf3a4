#!/usr/bin/env bash
# Restores from s3:// never write outside the target, whatever keys the prefix holds: keys
# with '..' components, absolute-looking keys ('//' after the prefix) and keys that make a
# path both a file and a directory are refused with a clear error, before anything is written.
# Both without a manifest (a flytekit-written prefix: every key is content) and with a forged
# manifest that lists such a key.
. "$CKPT_SOURCE_DIR/tests/e2e/lib.sh"
[ "$BACKEND" = s3 ] || fail "run with CKPT_TEST_BACKEND=s3"

echo ok-bytes >"$TMP/ok"
echo evil-bytes >"$TMP/evil"
mkdir -p "$TMP/work"
cd "$TMP/work" # a relative '..' would land in $TMP or $TMP/work if anything went wrong

check_refused() {  # KEY EXPECTED-MESSAGE
  local key=$1 msg=$2 P
  P=$(loc "k$RANDOM$RANDOM")
  store_put "$P" ok.txt "$TMP/ok"
  store_put "$P" "$key" "$TMP/evil"
  rm -rf "$TMP/work/r" && mkdir -p "$TMP/work/r/deep/er"
  echo precious >"$TMP/work/r/deep/er/keep"
  touch "$TMP/mark"
  ck 5 restore --src "$P" "$TMP/work/r/deep/er"
  assert_contains "$TMP/err" "$msg"
  assert_contains "$TMP/err" "$key"
  # Nothing written anywhere: not in the target, not around it.
  [ "$(find "$TMP" -type f -newer "$TMP/mark" ! -path "$TMP/out" ! -path "$TMP/err" | wc -l)" = 0 ] ||
    fail "refused restore of '$key' wrote: $(find "$TMP" -type f -newer "$TMP/mark")"
  [ "$(cat "$TMP/work/r/deep/er/keep")" = precious ] || fail "target changed"
  ! grep -rqF evil-bytes "$TMP/work" || fail "evil bytes landed for '$key'"
}

check_refused "../escape" "unsafe key"
check_refused "../../../../../../../../tmp/ckpt-escape-$RUN_ID" "unsafe key"
check_refused "sub/../../escape" "unsafe key"
check_refused "./x" "unsafe key"
check_refused "/abs-$RUN_ID" "unsafe key"
check_refused "/tmp/abs-$RUN_ID" "unsafe key"
[ ! -e "/abs-$RUN_ID" ] && [ ! -e "/tmp/abs-$RUN_ID" ] && [ ! -e "/tmp/ckpt-escape-$RUN_ID" ] ||
  fail "a key escaped to an absolute path"

# A key that makes 'a' both a file and a directory.
P=$(loc collide)
store_put "$P" a "$TMP/ok"
store_put "$P" a/b "$TMP/evil"
mkdir -p "$TMP/work/rc"
ck 5 restore --src "$P" "$TMP/work/rc"
assert_contains "$TMP/err" "both a file and a directory"
[ -z "$(ls -A "$TMP/work/rc")" ] || fail "collision restore wrote: $(ls -A "$TMP/work/rc")"

# A manifest naming an unsafe key (forged, or written by a broken writer) is refused too.
P=$(loc forged)
mkdir -p "$TMP/src" && cp "$TMP/evil" "$TMP/src/a.txt"
ck 0 save --dest "$P" "$TMP/src"
mk=$(store_keys "$P" | grep '^\.ckpt/manifests/.*\.json$' | head -1)
[ -n "$mk" ] || fail "no manifest written"
store_cat "$P" "$mk" | sed 's|"a.txt"|"../forged.txt"|' >"$TMP/forged.json"
grep -q '"../forged.txt"' "$TMP/forged.json" || fail "could not forge the manifest"
store_put "$P" "$mk" "$TMP/forged.json"
store_put "$P" "../forged.txt" "$TMP/evil"
store_rm "$P" a.txt
mkdir -p "$TMP/work/rf"
code=0
"$CKPT" restore --src "$P" "$TMP/work/rf" >"$TMP/out" 2>"$TMP/err" || code=$?
[ "$code" = 5 ] || fail "forged manifest: exit $code, expected 5"
assert_contains "$TMP/err" "../forged.txt"
[ ! -e "$TMP/work/forged.txt" ] && [ -z "$(ls -A "$TMP/work/rf")" ] || fail "forged manifest key written"

# Safe but unusual keys still round-trip (spaces, '+', unicode, '%', a leading dash).
P=$(loc unusual)
for k in "with space.txt" "plus+sign.txt" "ünï/cödé.txt" "per%cent.txt" "-dash.txt" "a=b&c.txt"; do
  store_put "$P" "$k" "$TMP/ok"
done
mkdir -p "$TMP/work/ru"
ck 0 restore --src "$P" "$TMP/work/ru"
for k in "with space.txt" "plus+sign.txt" "ünï/cödé.txt" "per%cent.txt" "-dash.txt" "a=b&c.txt"; do
  cmp "$TMP/ok" "$TMP/work/ru/$k" || fail "unusual key '$k' not restored"
done
echo ok
