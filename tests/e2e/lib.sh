# Shared by the end-to-end tests. Each test script is run by ctest with CKPT set to the
# built binary. CKPT_TEST_BACKEND=local (default) or s3 picks where checkpoints live;
# restore targets are always local directories.
set -euo pipefail

CKPT=${CKPT:?set CKPT to the ckpt binary}
BACKEND=${CKPT_TEST_BACKEND:-local}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ckpt-e2e.XXXXXX")
cleanup() { rm -rf "$TMP"; }
trap cleanup EXIT
export NO_COLOR=1
unset CKPT_DEST CKPT_SRC CKPT_QUIET CKPT_VERBOSE CKPT_JOBS

fail() {
  echo "FAIL: $*" >&2
  [ -f "$TMP/err" ] && { echo "--- stderr of the last command:" >&2; cat "$TMP/err" >&2; }
  exit 1
}

# run EXPECTED_EXIT cmd... : runs with stdout in $TMP/out and stderr in $TMP/err.
run() {
  local want=$1
  shift
  local got=0
  "$@" >"$TMP/out" 2>"$TMP/err" || got=$?
  [ "$got" = "$want" ] || fail "expected exit $want, got $got: $*"
}

# ck EXPECTED_EXIT args... : runs ckpt.
ck() {
  local want=$1
  shift
  run "$want" "$CKPT" "$@"
}

assert_contains() { grep -qF -- "$2" "$1" || fail "'$1' does not contain '$2': $(head -c 2000 "$1")"; }
assert_not_contains() { ! grep -qF -- "$2" "$1" || fail "'$1' unexpectedly contains '$2'"; }
assert_same_tree() { diff -r "$1" "$2" >/dev/null || fail "trees differ: $1 $2"; }
json_get() { /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval("d"+sys.argv[2]))' "$1" "$2"; }

# A fresh checkpoint location for this test: a local directory or an s3:// prefix.
RUN_ID=$(basename "$TMP")
loc() {
  case "$BACKEND" in
    local) echo "$TMP/store/$1" ;;
    s3) echo "s3://${CKPT_TEST_BUCKET:?}/$RUN_ID/$1" ;;
    *) fail "unknown backend $BACKEND" ;;
  esac
}

# Direct access to stored objects, bypassing ckpt (to simulate damage or other writers).
store_put() {  # LOC KEY FILE
  case "$BACKEND" in
    local) mkdir -p "$(dirname "$1/$2")" && cp "$3" "$1/$2" ;;
    s3) s3_put "$1" "$2" "$3" ;;
  esac
}
store_cat() {  # LOC KEY
  case "$BACKEND" in
    local) cat "$1/$2" ;;
    s3) s3_cat "$1" "$2" ;;
  esac
}
store_rm() {  # LOC KEY
  case "$BACKEND" in
    local) rm -f "$1/$2" ;;
    s3) s3_rm "$1" "$2" ;;
  esac
}
store_keys() {  # LOC: every key below LOC, sorted
  case "$BACKEND" in
    local) (cd "$1" && find . -type f | sed 's|^\./||' | LC_ALL=C sort) ;;
    s3) s3_keys "$1" ;;
  esac
}

# Random file of N KiB.
mkfile() { head -c "$(($2 * 1024))" /dev/urandom >"$1"; }

if [ "$BACKEND" = s3 ] && [ -f "${CKPT_SOURCE_DIR:-}/tests/s3/lib_s3.sh" ]; then
  # shellcheck source=/dev/null
  . "$CKPT_SOURCE_DIR/tests/s3/lib_s3.sh"
fi
