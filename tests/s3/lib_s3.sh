# Sourced by tests/e2e/lib.sh when CKPT_TEST_BACKEND=s3, and by the S3 tests: points ckpt
# at the radosgw that the ctest fixture started (its env file is $CKPT_S3_ENV) and gives
# direct object access that bypasses ckpt. A missing server is a failure, never a skip.
S3_ENV=${CKPT_S3_ENV:?CKPT_S3_ENV must name the env file of scripts/s3_server.sh}
[ -f "$S3_ENV" ] || {
  echo "FAIL: no S3 server: $S3_ENV missing (did the s3_server fixture start?)" >&2
  exit 1
}
# shellcheck source=/dev/null
. "$S3_ENV"
S3TOOL="/usr/bin/python3 ${CKPT_SOURCE_DIR:?}/tests/s3/s3tool.py"
export CKPT_TEST_BUCKET

s3_put() { $S3TOOL put "$1/$2" "$3" || fail "s3_put $1/$2"; }     # LOC KEY FILE
s3_cat() { $S3TOOL get "$1/$2" || fail "s3_cat $1/$2"; }          # LOC KEY
s3_rm() { $S3TOOL rm "$1/$2" || fail "s3_rm $1/$2"; }             # LOC KEY
s3_keys() { $S3TOOL ls "$1" | LC_ALL=C sort || fail "s3_keys $1"; } # LOC
s3_uploads() { $S3TOOL uploads "$1" || fail "s3_uploads $1"; }   # LOC: open multipart uploads

# Remove what this test stored too: memstore keeps every object in RAM.
cleanup() {
  $S3TOOL rm-prefix "s3://$CKPT_TEST_BUCKET/$RUN_ID/" >/dev/null 2>&1 || true
  rm -rf "$TMP"
}
