#!/usr/bin/env bash
# Bad input: clear errors naming the problem, documented exit codes, nothing lost.
. "$(dirname "$0")/lib.sh"

mkdir -p "$TMP/src" && mkfile "$TMP/src/a" 10 && mkfile "$TMP/src/b" 10

# The destination is a file.
echo "I am a file" >"$TMP/afile"
ck 2 save --dest "$TMP/afile" "$TMP/src"
assert_contains "$TMP/err" "not a directory"
[ "$(cat "$TMP/afile")" = "I am a file" ] || fail "destination file was changed"
ck 2 exists --src "$TMP/afile"

# Conflicting and malformed flags.
ck 2 save --dest a --checkpoint-path b "$TMP/src"
ck 2 restore --src "$TMP" --quiet --verbose
ck 2 save --dest "$TMP/d" --part-size 12 "$TMP/src"
ck 2 save --dest "s3://" "$TMP/src"
ck 2 restore --src "gopher://x/y" "$TMP"
assert_contains "$TMP/err" "gopher://"

# An unreadable input fails before anything is written (checked as an unprivileged user,
# since root reads everything).
if [ "$(id -u)" = 0 ]; then
  U=65534
  mkdir -p "$TMP/unpriv/src" "$TMP/unpriv/dest"
  echo ok >"$TMP/unpriv/src/readable"
  echo secret >"$TMP/unpriv/src/unreadable"
  chmod 000 "$TMP/unpriv/src/unreadable"
  chown -R "$U:$U" "$TMP/unpriv"
  chmod 755 "$TMP"
  run 1 setpriv --reuid=$U --regid=$U --clear-groups "$CKPT" save --dest "$TMP/unpriv/dest" "$TMP/unpriv/src"
  assert_contains "$TMP/err" "unreadable"
  assert_contains "$TMP/err" "Permission denied"
  [ -z "$(find "$TMP/unpriv/dest" -type f)" ] || fail "partial save after a permission error"
fi

# A full disk: the save fails with the reason, the previous checkpoint still restores, and no
# temporary files are left behind.
mkdir -p "$TMP/small"
mount -t tmpfs -o size=2m tmpfs "$TMP/small" || fail "cannot mount a small tmpfs (run as root)"
trap 'umount "$TMP/small" 2>/dev/null; cleanup' EXIT
ck 0 save --dest "$TMP/small/ck" "$TMP/src"
mkdir -p "$TMP/big" && mkfile "$TMP/big/a" 3000
ck 1 save --dest "$TMP/small/ck" "$TMP/big"
assert_contains "$TMP/err" "No space left on device"
[ -z "$(find "$TMP/small/ck/.ckpt/tmp" -type f)" ] || fail "temporary files left after ENOSPC"
mkdir "$TMP/r"
ck 0 restore --src "$TMP/small/ck" "$TMP/r"
assert_same_tree "$TMP/src" "$TMP/r"
# Restoring into a full disk fails cleanly and leaves the target as it was.
head -c $((1900 * 1024)) /dev/zero >"$TMP/small/filler" || true
mkdir -p "$TMP/small/target"
ck 0 save --dest "$TMP/bigck" "$TMP/big"
ck 1 restore --src "$TMP/bigck" "$TMP/small/target"
assert_contains "$TMP/err" "No space left on device"
[ -z "$(ls -A "$TMP/small/target")" ] || fail "failed restore left files"
echo ok
