#!/usr/bin/env bash
# The credential chain end to end against radosgw. Each source hands out the keys of a second
# radosgw user ("role" keys) that alone may use $CKPT_TEST_ROLE_BUCKET, so a save there
# succeeds only if ckpt really used that source. STS (AssumeRoleWithWebIdentity) and the EC2
# instance metadata service (IMDSv2) are LOCAL STAND-INS (tests/s3/cred_standins.py), not
# AWS: they check the token / role ARN / IMDSv2 session token and return the role keys.
. "$CKPT_SOURCE_DIR/tests/e2e/lib.sh"
[ "$BACKEND" = s3 ] || fail "run with CKPT_TEST_BACKEND=s3"

ROLE_AK=$CKPT_TEST_ROLE_ACCESS_KEY_ID
ROLE_SK=$CKPT_TEST_ROLE_SECRET_ACCESS_KEY
MAIN_AK=$AWS_ACCESS_KEY_ID
MAIN_SK=$AWS_SECRET_ACCESS_KEY
R="s3://$CKPT_TEST_ROLE_BUCKET/$RUN_ID"
STANDIN_PIDS=()
finish() {
  for p in "${STANDIN_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  AWS_ACCESS_KEY_ID=$ROLE_AK AWS_SECRET_ACCESS_KEY=$ROLE_SK $S3TOOL rm-prefix "$R/" >/dev/null 2>&1 || true
  cleanup
}
trap finish EXIT

start_standins() {  # NAME TTL -> sets STANDIN (URL) and STATS (file)
  local name=$1 ttl=$2
  STATS=$TMP/$name.stats
  /usr/bin/python3 "$CKPT_SOURCE_DIR/tests/s3/cred_standins.py" --access-key "$ROLE_AK" \
    --secret-key "$ROLE_SK" --ttl "$ttl" --port-file "$TMP/$name.port" --stats "$STATS" \
    --web-identity-token "oidc-$RUN_ID" --role-arn "arn:aws:iam::123456789012:role/ckpt-$RUN_ID" \
    >"$TMP/$name.log" 2>&1 &
  STANDIN_PIDS+=($!)
  for _ in $(seq 100); do [ -s "$TMP/$name.port" ] && break; sleep 0.1; done
  [ -s "$TMP/$name.port" ] || fail "credential stand-in did not start: $(cat "$TMP/$name.log")"
  STANDIN=http://127.0.0.1:$(cat "$TMP/$name.port")
}
stat_of() { /usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], 0))' "$1" "$2" 2>/dev/null || echo 0; }

# Runs ckpt with NO credentials in the environment except the VAR=VALUE pairs given.
HOME_EMPTY=$TMP/home && mkdir -p "$HOME_EMPTY"
ckc() {  # EXIT [VAR=VALUE...] -- ckpt args...
  local want=$1
  shift
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1") && shift; done
  shift
  run "$want" env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN \
    -u AWS_PROFILE -u AWS_DEFAULT_PROFILE -u AWS_WEB_IDENTITY_TOKEN_FILE -u AWS_ROLE_ARN \
    -u FLYTE_AWS_ACCESS_KEY_ID -u FLYTE_AWS_SECRET_ACCESS_KEY HOME="$HOME_EMPTY" \
    AWS_EC2_METADATA_DISABLED=true "${envs[@]}" "$CKPT" "$@"
  for s in "$ROLE_SK" "$MAIN_SK"; do
    assert_not_contains "$TMP/err" "$s"
    assert_not_contains "$TMP/out" "$s"
  done
}

mkdir -p "$TMP/src" && for i in 1 2 3 4 5 6; do mkfile "$TMP/src/f$i" 40; done
roundtrip() {  # NAME [VAR=VALUE...]: save to and restore from the role bucket with those
  local name=$1
  shift
  ckc 0 "$@" -- save --verbose --dest "$R/$name" "$TMP/src"
  rm -rf "$TMP/r" && mkdir "$TMP/r"
  ckc 0 "$@" -- restore --verbose --src "$R/$name" "$TMP/r"
  assert_same_tree "$TMP/src" "$TMP/r"
}

# The role bucket really is out of reach for the main keys (else the checks below prove nothing).
ckc 1 AWS_ACCESS_KEY_ID="$MAIN_AK" AWS_SECRET_ACCESS_KEY="$MAIN_SK" -- exists --src "$R/x"
assert_contains "$TMP/err" "403"

# 1. FLYTE_AWS_* win over AWS_*.
roundtrip flyte FLYTE_AWS_ACCESS_KEY_ID="$ROLE_AK" FLYTE_AWS_SECRET_ACCESS_KEY="$ROLE_SK" \
  AWS_ACCESS_KEY_ID="$MAIN_AK" AWS_SECRET_ACCESS_KEY="$MAIN_SK"

# 2. AWS_* environment variables.
roundtrip env AWS_ACCESS_KEY_ID="$ROLE_AK" AWS_SECRET_ACCESS_KEY="$ROLE_SK"

# 3. Shared credentials file and a named profile; the default profile holds the main keys.
cat >"$TMP/credentials" <<EOF
[default]
aws_access_key_id = $MAIN_AK
aws_secret_access_key = $MAIN_SK

[ckpt-role]
aws_access_key_id = $ROLE_AK
aws_secret_access_key = $ROLE_SK
EOF
roundtrip profile AWS_SHARED_CREDENTIALS_FILE="$TMP/credentials" AWS_PROFILE=ckpt-role
ckc 1 AWS_SHARED_CREDENTIALS_FILE="$TMP/credentials" AWS_PROFILE=no-such-profile -- exists --src "$R/x"
assert_contains "$TMP/err" "no-such-profile"
# ~/.aws/credentials by default.
mkdir -p "$HOME_EMPTY/.aws" && cp "$TMP/credentials" "$HOME_EMPTY/.aws/credentials"
roundtrip homefile AWS_PROFILE=ckpt-role
rm -rf "$HOME_EMPTY/.aws"

# 4. Web identity (Kubernetes service account): token file + role ARN -> STS stand-in.
start_standins sts 3600
echo "oidc-$RUN_ID" >"$TMP/token"
WI=(AWS_WEB_IDENTITY_TOKEN_FILE="$TMP/token" AWS_ROLE_ARN="arn:aws:iam::123456789012:role/ckpt-$RUN_ID"
  AWS_ENDPOINT_URL_STS="$STANDIN")
roundtrip webid "${WI[@]}"
[ "$(stat_of "$STATS" sts)" = 2 ] || fail "expected one STS call per process, got $(stat_of "$STATS" sts)"
# A rejected token: a clear error naming STS, exit 1, nothing saved.
echo "not-the-token" >"$TMP/badtoken"
ckc 1 "${WI[@]}" AWS_WEB_IDENTITY_TOKEN_FILE="$TMP/badtoken" -- save --dest "$R/webid-bad" "$TMP/src"
assert_contains "$TMP/err" "STS"
assert_contains "$TMP/err" "HTTP 400"
assert_not_contains "$TMP/err" "not-the-token"
ckc 1 "${WI[@]}" AWS_WEB_IDENTITY_TOKEN_FILE="$TMP/no-such-token-file" -- exists --src "$R/x"
assert_contains "$TMP/err" "no-such-token-file"
# The same through a profile in the config file (role_arn + web_identity_token_file).
cat >"$TMP/config" <<EOF
[profile wi]
role_arn = arn:aws:iam::123456789012:role/ckpt-$RUN_ID
web_identity_token_file = $TMP/token
EOF
roundtrip webid-profile AWS_CONFIG_FILE="$TMP/config" AWS_PROFILE=wi AWS_ENDPOINT_URL_STS="$STANDIN"

# Temporary credentials are fetched again before they expire: with credentials that are
# always inside the refresh margin, one save of 6 files asks STS more than once.
start_standins sts-short 60
ckc 0 AWS_WEB_IDENTITY_TOKEN_FILE="$TMP/token" AWS_ROLE_ARN="arn:aws:iam::123456789012:role/ckpt-$RUN_ID" \
  AWS_ENDPOINT_URL_STS="$STANDIN" -- save --dest "$R/refresh" "$TMP/src"
[ "$(stat_of "$STATS" sts)" -gt 1 ] || fail "credentials about to expire were not refreshed"

# 5. Instance metadata (IMDSv2) stand-in, used only when nothing else is configured.
start_standins imds 3600
roundtrip imds AWS_EC2_METADATA_DISABLED=false AWS_EC2_METADATA_SERVICE_ENDPOINT="$STANDIN"
[ "$(stat_of "$STATS" imds)" -ge 2 ] || fail "credentials did not come from instance metadata"
[ "$(stat_of "$STATS" rejected)" = 0 ] || fail "ckpt asked instance metadata without an IMDSv2 token"
# Environment keys come first: the metadata service is not asked.
before=$(stat_of "$STATS" imds)
ckc 0 AWS_EC2_METADATA_DISABLED=false AWS_EC2_METADATA_SERVICE_ENDPOINT="$STANDIN" \
  AWS_ACCESS_KEY_ID="$ROLE_AK" AWS_SECRET_ACCESS_KEY="$ROLE_SK" -- exists --src "$R/imds"
[ "$(stat_of "$STATS" imds)" = "$before" ] || fail "instance metadata asked although AWS_* keys were set"
echo ok
