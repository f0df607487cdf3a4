#!/usr/bin/env bash
# The command line itself: help, version, usage errors and their exit codes.
. "$(dirname "$0")/lib.sh"

ck 0 --help
assert_contains "$TMP/out" "Exit status"
for c in save restore read write exists inspect; do
  ck 0 "$c" --help
  assert_contains "$TMP/out" "--checkpoint-path"
  assert_contains "$TMP/out" "--prev-checkpoint"
done
ck 0 --version
grep -qE '^ckpt [0-9]+\.[0-9]+\.[0-9]+$' "$TMP/out" || fail "bad --version output"

ck 2 frobnicate
assert_contains "$TMP/err" "usage error"
ck 2
ck 2 save                                    # PATH is required
ck 2 exists -q -v --src "$TMP"               # conflicting flags
assert_contains "$TMP/err" "excludes"
ck 2 save --dest ftp://host/x "$TMP"         # unknown scheme, named
assert_contains "$TMP/err" "ftp://"
ck 2 save "$TMP"                             # no destination
assert_contains "$TMP/err" "no checkpoint destination"
ck 2 save --dest "$TMP/d" "$TMP/does-not-exist"
assert_contains "$TMP/err" "does-not-exist"
ck 2 exists --jobs 0 --src "$TMP"
# Flags after the subcommand and from the environment.
mkdir -p "$TMP/in" && echo hi >"$TMP/in/f"
CKPT_DEST="$TMP/envdest" ck 0 save "$TMP/in"
[ -f "$TMP/envdest/f" ] || fail "CKPT_DEST was not honoured"
CKPT_SRC="$TMP/envdest" ck 0 exists
# Errors are one line on stderr, data on stdout.
ck 4 exists --src "$TMP/nothing-here"
[ "$(wc -l <"$TMP/err")" -le 1 ] || fail "exists wrote more than one line to stderr"
assert_contains "$TMP/out" "state: missing"
echo "ok"
