#!/usr/bin/env bash
# Asynchronous saves: save --async returns once the snapshot is taken and the training program
# may overwrite its files; wait/status report the outcome; one upload at a time with the newest
# queued save replacing the queued one; a full staging filesystem fails at once; a killed or
# stopped uploader never yields a torn checkpoint; background failures are never silent.
. "$(dirname "$0")/lib.sh"

export CKPT_STATE_DIR="$TMP/state"
status_json() { "$CKPT" status --json --dest "$1" >"$TMP/status"; }
uploader_pid() {  # DEST: waits until an upload runs and prints its pid (nothing if it is over)
  for _ in $(seq 1 200); do
    status_json "$1"
    pid=$(/usr/bin/python3 -c 'import json,sys
d = json.load(open(sys.argv[1]))
if d["running"]: print(d["running"]["pid"])
elif not d["queued"] and d["finished"]: print("done")' "$TMP/status")
    [ "$pid" = done ] && return 0
    [ -n "$pid" ] && { echo "$pid"; return 0; }
    sleep 0.02
  done
  fail "no upload started: $(cat "$TMP/status")"
}
mkstate() {  # DIR TAG: 4 files whose content is derived from TAG
  mkdir -p "$1"
  for i in 1 2 3 4; do
    /usr/bin/python3 -c 'import sys,hashlib; sys.stdout.buffer.write(hashlib.sha256(sys.argv[1].encode()).digest()*(int(sys.argv[2])//32))' "$2-$i" $((4 << 20)) >"$1/f$i"
  done
}

# 1. The snapshot is what gets saved: the program overwrites its files right after.
D=$(loc a)
W="$TMP/work"
mkstate "$W" one
ck 0 save --async --json --dest "$D" "$W"
[ "$(json_get "$TMP/out" '["state"]')" = queued ] || fail "save --async: $(cat "$TMP/out")"
mkstate "$TMP/expect1" one
mkstate "$W" two  # training goes on
ck 0 wait --dest "$D"
rm -rf "$TMP/r" && mkdir "$TMP/r"
ck 0 restore --src "$D" "$TMP/r"
assert_same_tree "$TMP/expect1" "$TMP/r"
[ -z "$(ls -A "$W/../.ckpt-staging" 2>/dev/null)" ] || fail "staging copy left behind: $(ls "$W/../.ckpt-staging")"
ck 0 status --json --dest "$D"
[ "$(json_get "$TMP/out" '["finished"][-1]["state"]')" = committed ] || fail "status: $(cat "$TMP/out")"

# 2. Many saves in a row (with steps): one upload at a time, queued ones replaced by newer ones,
# the newest always committed last; --keep applies.
D=$(loc b)
for n in 1 2 3 4 5 6; do
  mkstate "$W" "round$n"
  ck 0 save --async --step next --keep 2 --dest "$D" "$W"
done
ck 0 wait --dest "$D"
mkstate "$TMP/expect6" round6
rm -rf "$TMP/r" && mkdir "$TMP/r"
ck 0 restore --src "$D" "$TMP/r"
assert_same_tree "$TMP/expect6" "$TMP/r"
status_json "$D"
/usr/bin/python3 - "$TMP/status" <<'EOF' || fail "queue history: $(cat "$TMP/status")"
import json, sys
jobs = json.load(open(sys.argv[1]))["finished"]
states = [j["state"] for j in jobs]
assert states[-1] == "committed", states
assert all(s in ("committed", "superseded") for s in states), states
assert len(jobs) == 6, states
EOF
ck 0 list --json "$D"
[ "$(json_get "$TMP/out" '[-1]["state"]')" = complete ] || fail "list: $(cat "$TMP/out")"
n_complete=$(/usr/bin/python3 -c 'import json,sys; print(sum(s["state"]=="complete" for s in json.load(open(sys.argv[1]))))' "$TMP/out")
[ "$n_complete" -le 2 ] || fail "--keep 2 left $n_complete complete steps"

# Concurrent save --async calls into one destination: each is committed or replaced by a newer
# one, the queue stays consistent, and the checkpoint is one of the snapshots, whole.
D=$(loc concurrent)
pids=()
for n in 1 2 3 4; do
  mkstate "$TMP/c$n" "conc$n"
  "$CKPT" save -q --async --step next --keep 0 --dest "$D" "$TMP/c$n" & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a concurrent save --async failed"; done
ck 0 wait --dest "$D"
status_json "$D"
/usr/bin/python3 - "$TMP/status" <<'EOF' || fail "queue after concurrent saves: $(cat "$TMP/status")"
import json, sys
jobs = json.load(open(sys.argv[1]))["finished"]
assert len(jobs) == 4, jobs
assert all(j["state"] in ("committed", "superseded") for j in jobs), jobs
assert jobs[-1]["state"] == "committed", jobs
EOF
rm -rf "$TMP/r" && mkdir "$TMP/r"
ck 0 restore --src "$D" "$TMP/r"
match=0
for n in 1 2 3 4; do diff -r "$TMP/c$n" "$TMP/r" >/dev/null && match=1; done
[ $match = 1 ] || fail "restore after concurrent saves matches none of the snapshots"

# 3. While an upload cannot proceed (here: its queue's uploader lock is held, as by a running
# uploader), wait --timeout exits 6 naming what is pending; once it can, wait sees it commit.
D=$(loc c)
status_json "$D"
Q=$(json_get "$TMP/status" '["queue"]')
mkdir -p "$Q"
flock -x "$Q/uploader.lock" sleep 2 &
locker=$!
sleep 0.2
mkstate "$W" three
ck 0 save --async --dest "$D" "$W"
ck 6 wait --timeout 300ms --dest "$D"
assert_contains "$TMP/err" "still pending"
wait "$locker"
ck 0 wait --timeout 60s --dest "$D"
mkstate "$TMP/expect3" three
rm -rf "$TMP/r" && mkdir "$TMP/r"
ck 0 restore --src "$D" "$TMP/r"
assert_same_tree "$TMP/expect3" "$TMP/r"

# 4. kill -9 of the uploader at random moments: the destination holds the previous complete
# checkpoint or the new one, never a torn one accepted; the next ckpt command re-queues the job
# and it commits.
big() { mkstate "$1" "$2" && for i in 1 2 3 4; do cat "$1/f$i" "$1/f$i" "$1/f$i" "$1/f$i" >"$1/g$i"; done; }
big "$TMP/v1" v1
big "$TMP/v2" v2
interrupted=0
for t in 1 2 3 4 5 6 7 8 9 10; do
  D=$(loc "kill$t")
  ck 0 save --dest "$D" "$TMP/v1"
  rm -rf "$W" && cp -r "$TMP/v2" "$W"
  # --fsync: uploads that last long enough for the kills to land inside them.
  ck 0 save --async --fsync -j 1 --dest "$D" "$W"
  pid=$(uploader_pid "$D")
  sleep "0.0$((RANDOM % 5))"
  if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi
  rm -rf "$TMP/r" && mkdir "$TMP/r"
  code=0
  "$CKPT" restore -q --src "$D" "$TMP/r" >/dev/null 2>"$TMP/err" || code=$?
  [ $code = 0 ] || fail "trial $t: restore after a killed uploader exited $code: $(cat "$TMP/err")"
  diff -r "$TMP/v1" "$TMP/r" >/dev/null || diff -r "$TMP/v2" "$TMP/r" >/dev/null ||
    fail "trial $t: restore returned neither checkpoint"
  ck 0 wait --timeout 120s --dest "$D"
  grep -q "uploading it again" "$TMP/err" && interrupted=$((interrupted + 1))
  rm -rf "$TMP/r" && mkdir "$TMP/r"
  ck 0 restore --src "$D" "$TMP/r"
  assert_same_tree "$TMP/v2" "$TMP/r"
done
echo "uploader killed mid-upload in $interrupted of 10 trials"
[ "$interrupted" -gt 0 ] || fail "no kill landed inside an upload; make the uploads longer"

# Snapshots left by a killed `save --async` (its process gone) or by a job no queue holds any
# more are removed by the next save --async that uses the same staging folder.
S="$TMP/stage-clean"
host=$(hostname | cut -c1-63 | tr '/ -' '___')
mkdir -p "$S/snap-00000000000000000001-$host-999999999-0000000000000000"
echo junk >"$S/snap-00000000000000000001-$host-999999999-0000000000000000/f"
mkdir -p "$S/snap-00000000000000000002-$host-1-0000000000000001"
echo "$TMP/state/queue-none" >"$S/snap-00000000000000000002-$host-1-0000000000000001.queue"
D=$(loc clean)
ck 0 save --async --staging "$S" --dest "$D" "$TMP/v1"
ck 0 wait --dest "$D"
[ -z "$(ls -A "$S")" ] || fail "stale snapshots left in the staging folder: $(ls "$S")"

# 5. A full staging filesystem fails the save at once, queues nothing, keeps the checkpoint.
D=$(loc full)
mkdir -p "$TMP/small"
mount -t tmpfs -o size=8m tmpfs "$TMP/small" || fail "cannot mount a tmpfs (tests run as root)"
trap 'umount "$TMP/small" 2>/dev/null; cleanup' EXIT
ck 0 save --dest "$D" "$TMP/v1"
ck 1 save --async --staging "$TMP/small/stage" --dest "$D" "$TMP/v2"
assert_contains "$TMP/err" "staging filesystem"
assert_contains "$TMP/err" "MiB free"
[ -z "$(ls -A "$TMP/small/stage" 2>/dev/null)" ] || fail "partial snapshot left on the full filesystem"
ck 0 status --json --dest "$D"
[ "$(json_get "$TMP/out" '["queued"]')" = None ] || fail "a failed snapshot was queued"
rm -rf "$TMP/r" && mkdir "$TMP/r"
ck 0 restore --src "$D" "$TMP/r"
assert_same_tree "$TMP/v1" "$TMP/r"

# 6. A failing background save is reported by wait (its exit code), status and the next save.
if [ "$BACKEND" = local ]; then
  BAD="$TMP/not-a-dir"
  echo x >"$BAD"
  ck 0 save --async --dest "$BAD" "$TMP/v1"
  # Let the upload fail without acknowledging it (status does not acknowledge).
  for _ in $(seq 1 200); do
    status_json "$BAD"
    [ "$(json_get "$TMP/status" '["finished"][-1]["state"]' 2>/dev/null)" = failed ] && break
    sleep 0.05
  done
  [ "$(json_get "$TMP/status" '["finished"][-1]["state"]')" = failed ] || fail "status: $(cat "$TMP/status")"
  ck 2 save --dest "$BAD" "$TMP/v1"
  assert_contains "$TMP/err" "an earlier background save"
  ck 2 wait --dest "$BAD"
  assert_contains "$TMP/err" "background save of"
  assert_contains "$TMP/err" "not a directory"
fi
echo ok
