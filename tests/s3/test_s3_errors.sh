#!/usr/bin/env bash
# Wrong credentials, a missing bucket, a bucket of another user, an unreachable endpoint, no
# credentials at all: each fails at once with exit 1 (ckpt(1): "An error: ... the network")
# and a message that names the location and the cause, never the XML, never the secret.
. "$CKPT_SOURCE_DIR/tests/e2e/lib.sh"
[ "$BACKEND" = s3 ] || fail "run with CKPT_TEST_BACKEND=s3"

mkdir -p "$TMP/src" "$TMP/r" && mkfile "$TMP/src/a.bin" 64
P=$(loc p)
ck 0 save --dest "$P" "$TMP/src"

no_xml() { assert_not_contains "$1" "<?xml"; assert_not_contains "$1" "<Error>"; }

# A wrong secret: radosgw checks the signature and answers 403.
BAD_SECRET="wrong-$RUN_ID-secret"
for cmd in "exists --src $P" "restore --src $P $TMP/r" "read --src $P" "save --dest $P $TMP/src"; do
  # shellcheck disable=SC2086
  AWS_SECRET_ACCESS_KEY=$BAD_SECRET ck 1 $cmd --verbose
  assert_contains "$TMP/err" "$CKPT_TEST_BUCKET"
  assert_contains "$TMP/err" "access denied"
  assert_contains "$TMP/err" "403"
  assert_not_contains "$TMP/err" "$BAD_SECRET"
  assert_not_contains "$TMP/out" "$BAD_SECRET"
  no_xml "$TMP/err"
done
[ -z "$(ls -A "$TMP/r")" ] || fail "a denied restore wrote files"
# The right key and secret are never printed either, even with --verbose.
ck 0 restore --src "$P" "$TMP/r" --verbose
assert_not_contains "$TMP/err" "$AWS_SECRET_ACCESS_KEY"
cmp "$TMP/src/a.bin" "$TMP/r/a.bin" || fail "restore"

# An unknown access key.
AWS_ACCESS_KEY_ID=NOSUCHKEY$RANDOM ck 1 exists --src "$P"
assert_contains "$TMP/err" "403"
no_xml "$TMP/err"

# A bucket that does not exist: named, for every command.
NB="s3://no-such-bucket-$RANDOM/prefix"
for cmd in "exists --src $NB" "restore --src $NB $TMP/r" "read --src $NB" "save --dest $NB $TMP/src"; do
  # shellcheck disable=SC2086
  ck 1 $cmd
  assert_contains "$TMP/err" "no-such-bucket-"
  assert_contains "$TMP/err" "bucket does not exist"
  no_xml "$TMP/err"
done
printf x >"$TMP/x"
ck 1 write --dest "$NB" "$TMP/x"
assert_contains "$TMP/err" "bucket does not exist"

# Another user's bucket: valid keys, no permission.
ck 1 exists --src "s3://$CKPT_TEST_ROLE_BUCKET/x"
assert_contains "$TMP/err" "$CKPT_TEST_ROLE_BUCKET"
assert_contains "$TMP/err" "403"
no_xml "$TMP/err"

# An endpoint where nothing listens: a quick, clear network error, no hang.
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start=$(date +%s)
AWS_ENDPOINT_URL=http://127.0.0.1:$port ck 1 exists --src "$P"
assert_contains "$TMP/err" "connect"
AWS_ENDPOINT_URL=http://127.0.0.1:$port ck 1 save --dest "$P" "$TMP/src"
assert_contains "$TMP/err" "connect"
[ $(($(date +%s) - start)) -lt 60 ] || fail "unreachable endpoint took $(($(date +%s) - start)) s"

# No credentials anywhere: says where it looked.
run 1 env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY AWS_SHARED_CREDENTIALS_FILE="$TMP/none" \
  AWS_CONFIG_FILE="$TMP/none" AWS_EC2_METADATA_DISABLED=true HOME="$TMP" \
  "$CKPT" exists --src "$P"
assert_contains "$TMP/err" "no AWS credentials"

# None of this damaged the checkpoint.
ck 0 exists --src "$P"
echo ok
