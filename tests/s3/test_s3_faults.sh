#!/usr/bin/env bash
# Faults between ckpt and radosgw (tests/s3/fault_proxy.py: 500, 503, SlowDown, connection
# resets, truncated bodies, stalls on a fraction of requests). Saves and restores either
# complete with identical bytes or fail with a clear error, leaving the previous checkpoint
# intact and no multipart upload behind; a server that stops answering gives a timeout
# error, never a hang.
. "$CKPT_SOURCE_DIR/tests/e2e/lib.sh"
[ "$BACKEND" = s3 ] || fail "run with CKPT_TEST_BACKEND=s3"

UPSTREAM=$AWS_ENDPOINT_URL
PROXY_PIDS=()
finish() {
  for p in "${PROXY_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  cleanup
}
trap finish EXIT

start_proxy() {  # NAME proxy-args... -> PROXY (URL), STATS
  local name=$1
  shift
  STATS=$TMP/$name.stats
  /usr/bin/python3 "$CKPT_SOURCE_DIR/tests/s3/fault_proxy.py" --upstream "$UPSTREAM" \
    --port-file "$TMP/$name.port" --stats "$STATS" --log "$TMP/$name.log" "$@" \
    >"$TMP/$name.out" 2>&1 &
  PROXY_PIDS+=($!)
  for _ in $(seq 100); do [ -s "$TMP/$name.port" ] && break; sleep 0.1; done
  [ -s "$TMP/$name.port" ] || fail "fault proxy did not start: $(cat "$TMP/$name.out")"
  PROXY=http://127.0.0.1:$(cat "$TMP/$name.port")
}
faults() { /usr/bin/python3 -c 'import json,sys; print(sum(json.load(open(sys.argv[1]))["faults"].values()))' "$1" 2>/dev/null || echo 0; }
fault_kinds() { /usr/bin/python3 -c 'import json,sys; print(" ".join(sorted(json.load(open(sys.argv[1]))["faults"])))' "$1" 2>/dev/null; }

# Small parts so one file is a multipart upload of many parts and a download of many ranges.
export CKPT_PART_SIZE=$((5 << 20)) CKPT_PARTS_IN_FLIGHT=4
# Fast retries and a short stall timeout keep the test quick; they are ckpt's own knobs.
export CKPT_S3_STALL_TIMEOUT=3

mkdir -p "$TMP/v1/sub" "$TMP/v2/sub"
mkfile "$TMP/v1/big.bin" $((23 * 1024))
mkfile "$TMP/v2/big.bin" $((23 * 1024))
for i in $(seq 1 12); do
  mkfile "$TMP/v1/sub/s$i" $((i * 7))
  mkfile "$TMP/v2/sub/s$i" $((i * 7))
done
mkfile "$TMP/v2/only-v2" 100

# 1. A quarter of all requests fail in assorted ways: save and restore still complete.
P=$(loc mixed)
start_proxy mixed --rate 0.25 --faults 500,503,slowdown,reset,truncate --max-faults 40 --seed 7
# A quarter of requests failing hits one request six times in a row once in ~4000: with
# concurrent requests the seeded sequence is not reproducible, so allow more attempts here.
export CKPT_S3_MAX_ATTEMPTS=12
AWS_ENDPOINT_URL=$PROXY ck 0 save --dest "$P" "$TMP/v1"
mkdir "$TMP/r1"
AWS_ENDPOINT_URL=$PROXY ck 0 restore --src "$P" "$TMP/r1" --json
assert_same_tree "$TMP/v1" "$TMP/r1"
[ "$(json_get "$TMP/out" '["verified"]')" = True ] || fail "restore through faults not verified"
n=$(faults "$STATS")
[ "$n" -ge 10 ] || fail "only $n faults injected: the test did not test much"
echo "mixed: $n faults injected ($(fault_kinds "$STATS"))"
# And read of a single big object.
F=$(loc single)
AWS_ENDPOINT_URL=$PROXY ck 0 save --dest "$F" "$TMP/v1/big.bin"
AWS_ENDPOINT_URL=$PROXY ck 0 read --src "$F" -o "$TMP/big.back"
cmp "$TMP/v1/big.bin" "$TMP/big.back" || fail "read through faults"
unset CKPT_S3_MAX_ATTEMPTS
[ -z "$(s3_uploads "$P")$(s3_uploads "$F")" ] || fail "multipart uploads left behind: $(s3_uploads "$P")"

# 1b. The answer to "start a multipart upload" is lost after the server acted on it (twice):
#     the retries start new uploads, and the orphaned ones must not be left behind.
start_proxy lost --rate 1 --faults truncate --methods POST --match '?uploads' --max-faults 2
O=$(loc orphans)
AWS_ENDPOINT_URL=$PROXY ck 0 save --dest "$O" "$TMP/v1/big.bin"
[ "$(faults "$STATS")" = 2 ] || fail "lost multipart starts not injected ($(faults "$STATS"))"
[ -z "$(s3_uploads "$O")" ] || fail "uploads orphaned by a retried start left behind: $(s3_uploads "$O")"
ck 0 read --src "$O" -o "$TMP/big.back2"
cmp "$TMP/v1/big.bin" "$TMP/big.back2" || fail "save after lost multipart starts"

# 2. Downloads whose bodies are cut short half the time are retried, never accepted short.
start_proxy trunc --rate 0.5 --faults truncate --methods GET --max-faults 30 --seed 3
mkdir "$TMP/r2"
AWS_ENDPOINT_URL=$PROXY ck 0 restore --src "$P" "$TMP/r2"
assert_same_tree "$TMP/v1" "$TMP/r2"
[ "$(faults "$STATS")" -ge 5 ] || fail "truncation barely exercised ($(faults "$STATS"))"

# 3. Every upload request fails: the save fails clearly, the previous checkpoint stays intact
#    and restorable, and the aborted multipart uploads are gone.
start_proxy down --rate 1 --faults 503,500,reset --methods PUT,POST --max-faults 100000 --seed 5
AWS_ENDPOINT_URL=$PROXY CKPT_S3_MAX_ATTEMPTS=3 ck 1 save --dest "$P" "$TMP/v2"
assert_contains "$TMP/err" "$P"
assert_not_contains "$TMP/err" "<Error>"
ck 0 exists --src "$P"
mkdir "$TMP/r3"
ck 0 restore --src "$P" "$TMP/r3"
assert_same_tree "$TMP/v1" "$TMP/r3"
[ -z "$(s3_uploads "$P")" ] || fail "failed save left multipart uploads: $(s3_uploads "$P")"

# 4. Uploads that fail only partly (a third of them, resets included): afterwards a restore
#    gives the new checkpoint or the old one, whole, or refuses with exit 5 (saves overwrite
#    files in place, as flytekit's do), never a mix accepted as complete.
start_proxy partial --rate 0.35 --faults 503,reset,500 --methods PUT,POST --max-faults 100000 --seed 11
code=0
AWS_ENDPOINT_URL=$PROXY CKPT_S3_MAX_ATTEMPTS=2 "$CKPT" save -q --dest "$P" "$TMP/v2" 2>"$TMP/err" || code=$?
[ "$code" = 0 ] || [ "$code" = 1 ] || fail "partly failing save exited $code"
mkdir "$TMP/r4"
rcode=0
"$CKPT" restore -q --src "$P" "$TMP/r4" >"$TMP/out" 2>"$TMP/err" || rcode=$?
case $rcode in
  0)
    diff -r "$TMP/v2" "$TMP/r4" >/dev/null || diff -r "$TMP/v1" "$TMP/r4" >/dev/null ||
      fail "restore after a partly failed save accepted a mix" ;;
  5) assert_contains "$TMP/err" "corrupt" ;;
  *) fail "restore after a partly failed save exited $rcode: $(cat "$TMP/err")" ;;
esac
echo "partial: save exit $code, restore exit $rcode, $(faults "$STATS") faults"
[ -z "$(s3_uploads "$P")" ] || fail "multipart uploads left behind: $(s3_uploads "$P")"

# 5. A server that accepts the request and never answers: a timeout error, not a hang.
for kind in stall stallbody; do
  start_proxy "$kind" --rate 1 --faults "$kind" --methods GET --stall-seconds 300
  mkdir -p "$TMP/r5$kind"
  start=$(date +%s)
  code=0
  AWS_ENDPOINT_URL=$PROXY CKPT_S3_MAX_ATTEMPTS=2 timeout 120 "$CKPT" restore --src "$P" "$TMP/r5$kind" \
    >"$TMP/out" 2>"$TMP/err" || code=$?
  [ "$code" != 124 ] || fail "$kind: ckpt hung (killed after 120 s)"
  [ "$code" = 1 ] || fail "$kind: exit $code, expected 1: $(cat "$TMP/err")"
  grep -qi "time" "$TMP/err" || fail "$kind: no timeout in the error: $(cat "$TMP/err")"
  echo "$kind: failed after $(($(date +%s) - start)) s: $(head -c 300 "$TMP/err")"
done

# 6. A file that grows or shrinks while its parts go up (parts are read from the file as they
#    are sent): the save fails naming the change, the previous checkpoint stays, no upload is
#    left. The first part stalls until the 3 s stall timeout, so the change lands mid-upload.
for change in grew shrank; do
  G=$(loc "changing-$change")
  mkfile "$TMP/changing.bin" $((23 * 1024))
  ck 0 save --dest "$G" "$TMP/changing.bin"
  cp "$TMP/changing.bin" "$TMP/changing.orig"
  start_proxy "$change" --rate 1 --faults stall --methods PUT --match 'partNumber=1&' \
    --max-faults 1 --stall-seconds 30
  if [ "$change" = grew ]; then
    (sleep 1 && head -c 4096 /dev/urandom >>"$TMP/changing.bin") &
  else
    (sleep 1 && truncate -s $((6 << 20)) "$TMP/changing.bin") &
  fi
  AWS_ENDPOINT_URL=$PROXY ck 1 save --dest "$G" "$TMP/changing.bin"
  wait $!
  [ "$(faults "$STATS")" = 1 ] || fail "$change: the first part was not stalled"
  assert_contains "$TMP/err" "$change"
  msg=$(head -c 300 "$TMP/err")
  ck 0 read --src "$G" -o "$TMP/changing.back"
  cmp "$TMP/changing.orig" "$TMP/changing.back" || fail "$change: the previous checkpoint was lost"
  [ -z "$(s3_uploads "$G")" ] || fail "$change: multipart upload left behind: $(s3_uploads "$G")"
  echo "$change: $msg"
done
echo ok
