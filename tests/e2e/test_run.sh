#!/usr/bin/env bash
# shellcheck disable=SC2016  # the CMD strings below expand in CMD's shell, not here
# ckpt run, the preemption-proof entrypoint, driving tests/e2e/trainer.py (a loop that writes a
# payload derived from its step, then the step, into $CKPT_DIR and resumes from it):
#  a. SIGTERM at random moments with --every 200ms: ckpt run exits with the trainer's 143,
#     the destination then holds exactly the state the trainer stopped at (never a torn one),
#     every step committed on the way is consistent too, and the next attempt resumes.
#  b. exit status pass-through, the final save when CMD exits by itself, exec failures,
#     usage errors, the environment CMD sees, --kill-after, forwarded signals, exit 7 when the
#     final save fails or does not commit within the grace period, corrupt -> fresh start.
#  c. carry-forward across three attempts when the middle one is killed before any save.
#  d. as PID 1 of a PID namespace: orphans are reaped, SIGTERM from outside is handled.
#  e. --json: every line on stderr is an event object.
. "$(dirname "$0")/lib.sh"

export CKPT_STATE_DIR="$TMP/state"
T=(/usr/bin/python3 "$(dirname "$0")/trainer.py")

# wait_for FILE TEXT: until FILE contains TEXT (20 s at most).
wait_for() {
  for _ in $(seq 1 400); do
    grep -qF -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  fail "timed out waiting for '$2' in $1: $(cat "$1")"
}
# restore_to LOC DIR: the destination's checkpoint into a fresh DIR.
restore_to() {
  rm -rf "$2" && mkdir -p "$2"
  "$CKPT" restore -q --src "$1" "$2" >/dev/null 2>"$TMP/restore.err" ||
    fail "restore of $1 failed: $(cat "$TMP/restore.err")"
}
# checked_step DIR: the trainer's step in DIR; fails unless payload and step agree.
checked_step() {
  local step
  step=$("${T[@]}" --check "$1") || fail "torn checkpoint in $1: state.txt says '$step', the payload differs"
  echo "$step"
}
# bg_run OUT ERR ARGS...: ckpt run ARGS in the background, its pid in RUN_PID. OUT and ERR
# are emptied first, so that wait_for never reads an earlier command's output (and they
# exist even if a signal stops the shell's child before its redirections).
bg_run() {
  local out=$1 err=$2
  shift 2
  : >"$out"
  : >"$err"
  "$CKPT" run "$@" >"$out" 2>"$err" &
  RUN_PID=$!
}
# finish_run: waits for RUN_PID, its exit status in CODE.
finish_run() {
  CODE=0
  { wait "$RUN_PID"; } 2>/dev/null || CODE=$?  # no "Killed" notice from the shell
}

# ---------------------------------------------------------------------------------------
# a. SIGTERM at random moments. Each trial is a new attempt (fresh DIR, its own destination)
# whose previous checkpoints are all earlier attempts' destinations, newest first. Every
# third trial is signalled right after start (during the restore or before the trainer's
# handlers); the others at a random moment of training. The trainer spends about half its
# time writing, so periodic snapshots often start mid-write: every step they commit must be
# consistent too (--keep 0 keeps them all).
trials=${CKPT_RUN_TRIALS:-8}
prevs=() expect=0 periodic=0 early=0 retried=0 steps_checked=0
for t in $(seq 1 "$trials"); do
  D=$(loc "sigterm-$t")
  opts=(-v --dir "$TMP/a$t" --every 200ms --keep 0 --dest "$D")
  for p in "${prevs[@]}"; do opts+=(--prev-checkpoint "$p"); done
  bg_run "$TMP/a.out" "$TMP/a.err" "${opts[@]}" -- "${T[@]}" --step-ms 5 --payload-kib 2048
  if [ $((t % 3)) = 0 ]; then
    sleep "0.0$(printf '%02d' $((RANDOM % 60)))"
  else
    wait_for "$TMP/a.out" "start "
    sleep "0.$(printf '%03d' $((RANDOM % 1000)))"
  fi
  kill -TERM "$RUN_PID"
  finish_run
  [ "$CODE" = 143 ] || fail "trial $t: ckpt run exited $CODE, expected the trainer's 143: $(cat "$TMP/a.err")"
  if grep -q '^start ' "$TMP/a.out"; then
    if [ "$expect" = 0 ]; then
      assert_contains "$TMP/a.out" "start restored=0 step=0"
    else
      assert_contains "$TMP/a.out" "start restored=1 step=$expect "
    fi
  fi
  stopped=$(sed -n 's/^stopped at step \([0-9]*\) (SIGTERM)$/\1/p' "$TMP/a.out")
  if [ -n "$stopped" ]; then
    assert_contains "$TMP/a.err" "final save"
    assert_contains "$TMP/a.err" "all saves committed"
    expect=$stopped
  else
    early=$((early + 1))  # stopped before the trainer could handle it: nothing new written
  fi
  # Exactly the state the trainer stopped at, consistent. Stopped before training: the state
  # it restored (carried forward), or nothing if ckpt run itself had not started yet.
  code=0
  "$CKPT" exists -q --src "$D" || code=$?
  if [ "$code" = 4 ] && { [ "$expect" = 0 ] || [ -z "$stopped" ]; }; then
    :
  elif [ "$code" = 0 ]; then
    restore_to "$D" "$TMP/a-restored"
    got=$(checked_step "$TMP/a-restored")
    [ "$got" = "$expect" ] || fail "trial $t: $D holds step $got, the trainer's last state is $expect"
  else
    fail "trial $t: exists exited $code for $D (expected step $expect): $(cat "$TMP/a.err")"
  fi
  for step in $("$CKPT" list --json --dest "$D" 2>/dev/null |
    /usr/bin/python3 -c 'import json,sys; print(" ".join(str(s["step"]) for s in json.load(sys.stdin) if s["state"] == "complete"))'); do
    rm -rf "$TMP/a-step" && mkdir "$TMP/a-step"
    "$CKPT" restore -q --step "$step" --src "$D" "$TMP/a-step" >/dev/null || fail "trial $t: restore of step $step"
    checked_step "$TMP/a-step" >/dev/null
    steps_checked=$((steps_checked + 1))
  done
  n=$(grep -c '^ckpt: info: saving' "$TMP/a.err" || true)
  periodic=$((periodic + n))
  n=$(grep -c 'changed while it was copied' "$TMP/a.err" || true)
  retried=$((retried + n))
  prevs=("$D" "${prevs[@]}")
done
echo "a: $trials trials, last step $expect, $periodic periodic saves ($retried snapshot rounds retried" \
  "after a file changed mid-copy), $steps_checked committed steps all consistent, $early stopped before training"
[ "$periodic" -gt 0 ] || fail "no periodic save happened in $trials trials"
[ "$expect" -gt 0 ] || fail "no trial trained"
# The next attempt resumes where the last one stopped, and continues counting.
ck 0 run --dir "$TMP/a-next" --dest "$(loc sigterm-next)" --prev-checkpoint "${prevs[0]}" \
  -- "${T[@]}" --steps $((expect + 3)) --step-ms 1
assert_contains "$TMP/out" "start restored=1 step=$expect "
assert_contains "$TMP/out" "done at step $((expect + 3))"

# ---------------------------------------------------------------------------------------
# b. Exit statuses, the final save, the environment.
W="$TMP/b"
D=$(loc b)
ck 3 run --dir "$W" --dest "$D" -- sh -c 'echo one >"$CKPT_DIR/f"; exit 3'
assert_contains "$TMP/err" "final save"
restore_to "$D" "$TMP/r"
[ "$(cat "$TMP/r/f")" = one ] || fail "the final save after CMD exited did not hold its last write"
ck 137 run --dir "$W" --dest "$D" -- sh -c 'kill -KILL $$'
assert_contains "$TMP/err" "killed by SIGKILL"
ck 143 run --dir "$W" --dest "$D" -- sh -c 'echo two >"$CKPT_DIR/f"; kill -TERM $$'
restore_to "$D" "$TMP/r"
[ "$(cat "$TMP/r/f")" = two ] || fail "no final save after CMD died of a signal"
ck 127 run --dir "$W" --dest "$D" -- "$TMP/no-such-program"
assert_contains "$TMP/err" "cannot run '$TMP/no-such-program': No such file or directory"
ck 127 run --dir "$W" --dest "$D" -- no-such-command-for-ckpt-run
assert_contains "$TMP/err" "command not found"
printf 'echo\n' >"$TMP/not-executable"
ck 126 run --dir "$W" --dest "$D" -- "$TMP/not-executable"
assert_contains "$TMP/err" "Permission denied"

# Usage errors: exit 2 and a message naming the problem; CMD never runs.
rm -f "$TMP/ran"
ck 2 run --dir "$W" --dest "$D" touch "$TMP/ran"
assert_contains "$TMP/err" "'--'"
ck 2 run --dir "$W" --dest "$D" --
assert_contains "$TMP/err" "no command after '--'"
ck 2 run --dir "$W" --dest "$D" --every 5x -- touch "$TMP/ran"
assert_contains "$TMP/err" "invalid duration '5x'"
ck 2 run --dir "$W" --dest "$D" --grace soon -- touch "$TMP/ran"
assert_contains "$TMP/err" "invalid duration 'soon'"
ck 2 run --dir "$W" --dest "$D" --kill-after 30s -- touch "$TMP/ran"
assert_contains "$TMP/err" "--kill-after (30s) is longer than --grace (25s)"
ck 2 run --dest "$D" -- touch "$TMP/ran"
assert_contains "$TMP/err" "--dir"
ck 2 run --dir "$W" -- touch "$TMP/ran"
assert_contains "$TMP/err" "destination"
[ ! -e "$TMP/ran" ] || fail "CMD ran despite a usage error"
# A restore failure other than "nothing there" or "corrupt" stops the job before CMD.
echo not-a-directory >"$TMP/a-file"
ck 2 run --dir "$W" --dest "$(loc b-other)" --prev-checkpoint "$TMP/a-file" -- touch "$TMP/ran"
assert_contains "$TMP/err" "not a directory"
[ ! -e "$TMP/ran" ] || fail "CMD ran although the restore failed"
if [ "$BACKEND" = s3 ]; then
  FLYTE_AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID FLYTE_AWS_SECRET_ACCESS_KEY=wrong-secret \
    ck 1 run --dir "$W" --dest "$D" -- touch "$TMP/ran"
  [ ! -e "$TMP/ran" ] || fail "CMD ran although the destination could not be read"
fi

# What CMD sees: an absolute CKPT_DIR (relative --dir), CKPT_RESTORED, the canonical
# destination, CKPT_STEP=next and the retention.
mkdir -p "$TMP/cwd"
(cd "$TMP/cwd" && "$CKPT" run --dir rel/dir --dest "$D" --keep 5 -- sh -c \
  'printf "%s\n" "$CKPT_DIR" "$CKPT_RESTORED" "$CKPT_DEST" "$CKPT_STEP" "$CKPT_KEEP"' \
  >"$TMP/out" 2>"$TMP/err") || fail "env run failed: $(cat "$TMP/err")"
canonical=$D
[ "$BACKEND" = local ] && canonical=$(cd "$D" && pwd)
printf '%s\n' "$TMP/cwd/rel/dir" 1 "$canonical" next 5 >"$TMP/expect-env"
diff "$TMP/expect-env" "$TMP/out" >/dev/null || fail "CMD's environment: $(cat "$TMP/out")"
[ "$(cat "$TMP/cwd/rel/dir/f")" = two ] || fail "the checkpoint was not restored into --dir"
rm -rf "$TMP/cwd"

# A CMD that ignores SIGTERM is killed after --kill-after; the final save still happens.
D=$(loc b-kill)
bg_run "$TMP/out" "$TMP/err" --dir "$TMP/b-kill" --dest "$D" --grace 5s --kill-after 300ms \
  -- "${T[@]}" --ignore-term --step-ms 5
wait_for "$TMP/out" "start "
wait_for "$TMP/out" "step 3"
kill -TERM "$RUN_PID"
finish_run
[ "$CODE" = 137 ] || fail "expected 137 after SIGKILL, got $CODE: $(cat "$TMP/err")"
assert_contains "$TMP/err" "sending SIGKILL"
assert_contains "$TMP/err" "final save"
assert_contains "$TMP/err" "all saves committed"

# SIGUSR1 is forwarded; SIGINT too (in its own process group: a background job of a
# non-interactive shell ignores SIGINT, and ckpt run keeps an inherited "ignore").
D=$(loc b-int)
set -m
bg_run "$TMP/out" "$TMP/err" --dir "$TMP/b-int" --dest "$D" -- "${T[@]}" --step-ms 10
set +m
wait_for "$TMP/out" "start "
kill -USR1 "$RUN_PID"
wait_for "$TMP/out" "usr1"
kill -INT "$RUN_PID"
finish_run
[ "$CODE" = 130 ] || fail "expected 130 after SIGINT, got $CODE: $(cat "$TMP/err")"
stopped=$(sed -n 's/^stopped at step \([0-9]*\) (SIGINT)$/\1/p' "$TMP/out")
[ -n "$stopped" ] || fail "the trainer did not get SIGINT: $(cat "$TMP/out")"
restore_to "$D" "$TMP/r"
[ "$(checked_step "$TMP/r")" = "$stopped" ] || fail "SIGINT: the final state was not saved"

# CMD's own `ckpt save --async "$CKPT_DIR"` joins the same queue, as a new step.
D=$(loc b-async)
ck 0 run --dir "$TMP/b-async" --dest "$D" --keep 3 -- sh -c \
  'echo v1 >"$CKPT_DIR/f" && "$CKPT" save -q --async "$CKPT_DIR" && "$CKPT" wait -q && echo v2 >"$CKPT_DIR/f"'
[ "$(grep -c '^ckpt: info: committed step' "$TMP/err")" = 2 ] || fail "expected two commits: $(cat "$TMP/err")"
restore_to "$D" "$TMP/r"
[ "$(cat "$TMP/r/f")" = v2 ] || fail "the final save is not the newest step"
rm -rf "$TMP/r" && mkdir "$TMP/r"
ck 0 restore --step 1 --src "$D" "$TMP/r"
[ "$(cat "$TMP/r/f")" = v1 ] || fail "CMD's own save --async was not step 1"

# Exit 7: the final save's upload fails (the destination turned into a file; local only).
if [ "$BACKEND" = local ]; then
  D=$(loc b-fail)
  ck 7 run --dir "$TMP/b-fail" --dest "$D" -- sh -c 'echo x >"$CKPT_DIR/f"; rm -rf "$0"; echo >"$0"' "$D"
  assert_contains "$TMP/err" "final save failed:"
fi
# Exit 7: uploads not committed within the grace period. Holding the queue's uploader lock
# makes async saves believe an uploader runs, so nothing commits until it is released.
D=$(loc b-slow)
"$CKPT" status --json --dest "$D" >"$TMP/status"
Q=$(json_get "$TMP/status" '["queue"]')
mkdir -p "$Q"
/usr/bin/python3 -c 'import fcntl, sys, time
f = open(sys.argv[1], "a"); fcntl.flock(f, fcntl.LOCK_EX); print("locked", flush=True); time.sleep(120)' \
  "$Q/uploader.lock" >"$TMP/lock.out" &
holder=$!
wait_for "$TMP/lock.out" locked
bg_run "$TMP/out" "$TMP/err" --dir "$TMP/b-slow" --dest "$D" --grace 1s -- "${T[@]}" --step-ms 10
wait_for "$TMP/out" "step 2"
kill -TERM "$RUN_PID"
finish_run
kill "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true
[ "$CODE" = 7 ] || fail "expected 7 when uploads do not commit in time, got $CODE: $(cat "$TMP/err")"
assert_contains "$TMP/err" "uploads not committed within the grace period"
# The queued save is not lost: it commits once an uploader can run.
stopped=$(sed -n 's/^stopped at step \([0-9]*\) (SIGTERM)$/\1/p' "$TMP/out")
ck 0 wait --dest "$D"
restore_to "$D" "$TMP/r"
[ "$(checked_step "$TMP/r")" = "$stopped" ] || fail "the late upload does not hold the final state"

# A corrupt checkpoint in the destination: reported, then a fresh start (never a crash).
D=$(loc b-corrupt)
mkdir -p "$TMP/b-src" && echo data >"$TMP/b-src/state.txt" && echo more >"$TMP/b-src/other"
ck 0 save --step next --dest "$D" "$TMP/b-src"
store_rm "$D" .ckpt/steps/1/other
ck 0 run --dir "$TMP/b-corrupt" --dest "$D" -- "${T[@]}" --steps 2 --step-ms 1
assert_contains "$TMP/err" "fresh start"
assert_contains "$TMP/out" "start restored=0 step=0"
restore_to "$D" "$TMP/r"
[ "$(checked_step "$TMP/r")" = 2 ] || fail "after a fresh start the new progress was not saved"

# ---------------------------------------------------------------------------------------
# c. Carry-forward: attempt 1 trains to step 5; attempt 2 restores it and is killed (kill -9
# of ckpt run and of the trainer) before any save of its own; attempt 3, given only attempt
# 2's destination as Flyte would, still resumes from step 5.
A1=$(loc attempt-1) A2=$(loc attempt-2) A3=$(loc attempt-3)
ck 0 run --dir "$TMP/c1" --dest "$A1" --prev-checkpoint '""' -- "${T[@]}" --steps 5 --step-ms 1
for variant in carry no-carry; do
  B2=$A2 flags=()
  if [ $variant = no-carry ]; then
    B2=$(loc attempt-2b)
    flags=(--no-carry-forward)
  fi
  bg_run "$TMP/out" "$TMP/err" --dir "$TMP/c2-$variant" --dest "$B2" --prev-checkpoint "$A1" \
    --every 10m "${flags[@]}" -- "${T[@]}" --step-ms 5
  wait_for "$TMP/out" "start restored=1 step=5 "
  trainer=$(sed -n 's/^start .* pid=\([0-9]*\)$/\1/p' "$TMP/out")
  kill -9 "$RUN_PID" "$trainer"
  finish_run
  if [ $variant = carry ]; then
    ck 0 run --dir "$TMP/c3" --dest "$A3" --prev-checkpoint "$A2" -- "${T[@]}" --steps 7 --step-ms 1
    assert_contains "$TMP/out" "start restored=1 step=5 "
    assert_contains "$TMP/out" "done at step 7"
  else
    # Without carry-forward attempt 2's destination is empty: only a fallback source helps.
    ck 0 run --dir "$TMP/c3b" --dest "$(loc attempt-3b)" --prev-checkpoint "$B2" -- "${T[@]}" --steps 1
    assert_contains "$TMP/out" "start restored=0 step=0"
    ck 0 run --dir "$TMP/c3c" --dest "$(loc attempt-3c)" --prev-checkpoint "$B2" --prev-checkpoint "$A1" \
      -- "${T[@]}" --steps 7 --step-ms 1
    assert_contains "$TMP/out" "start restored=1 step=5 "
  fi
done

# ---------------------------------------------------------------------------------------
# d. PID 1 of a new PID namespace, as in a container without tini. CMD leaves orphans (the
# subshells exit at once, their sleeps are re-parented to PID 1), then counts zombies.
if unshare --pid --fork --mount-proc true 2>/dev/null; then
  D=$(loc pid1)
  # Zombies seen twice half a second apart are leaks (not a child exiting right then).
  cat >"$TMP/pid1.sh" <<'EOF'
(sleep 0.2 &); (sleep 0.2 &); (sleep 0.2 &)
sleep 1
zombies() { awk '$3 == "Z" {print $1}' /proc/[0-9]*/stat 2>/dev/null; }
first=" $(zombies | tr '\n' ' ') "
sleep 0.5
left=""
for p in $(zombies); do case "$first" in *" $p "*) left="$left $p" ;; esac; done
echo "ppid=$PPID zombies=${left:-none}"
exec "$@"
EOF
  : >"$TMP/out"
  unshare --pid --fork --mount-proc "$CKPT" run --dir "$TMP/d" --dest "$D" --every 200ms \
    -- sh "$TMP/pid1.sh" "${T[@]}" --step-ms 10 >"$TMP/out" 2>"$TMP/err" &
  ns=$!
  wait_for "$TMP/out" "start "
  assert_contains "$TMP/out" "ppid=1 zombies=none"  # CMD's parent is ckpt run; no zombie left
  init=$(cat "/proc/$ns/task/$ns/children")  # ckpt run, PID 1 inside
  [ -n "$init" ] || fail "no process in the namespace"
  sleep 0.5
  kill -TERM "$init"
  code=0
  wait "$ns" || code=$?
  [ "$code" = 143 ] || fail "PID 1: expected 143, got $code: $(cat "$TMP/err")"
  stopped=$(sed -n 's/^stopped at step \([0-9]*\) (SIGTERM)$/\1/p' "$TMP/out")
  [ -n "$stopped" ] || fail "PID 1 did not forward SIGTERM: $(cat "$TMP/out")"
  restore_to "$D" "$TMP/r"
  [ "$(checked_step "$TMP/r")" = "$stopped" ] || fail "PID 1: the final state was not saved"
else
  echo "d: skipped (unshare --pid needs privileges here)"
fi

# ---------------------------------------------------------------------------------------
# e. --json: every stderr line is one event object with "event" and "time".
D=$(loc json)
ck 0 run --json --dir "$TMP/e" --dest "$D" --every 100ms -- "${T[@]}" --steps 40 --step-ms 10
/usr/bin/python3 - "$TMP/err" <<'EOF' || fail "--json events: $(cat "$TMP/err")"
import json, sys
events = [json.loads(line) for line in open(sys.argv[1])]
assert all("event" in e and e["time"].endswith("Z") for e in events), events
names = [e["event"] for e in events]
for want in ("fresh_start", "started", "saving", "committed", "exited", "final_save", "all_committed", "exit"):
    assert want in names, (want, names)
assert names[-1] == "exit" and events[-1]["code"] == 0, events[-1]
assert any(e["event"] == "saving" and not e["final"] and e["method"] in ("copy", "reflink") for e in events), events
EOF
echo ok
