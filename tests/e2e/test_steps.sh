#!/usr/bin/env bash
# Steps (--step N|next, the newest complete one wins, list, --keep, prune), fallback sources
# and carry-forward.
. "$(dirname "$0")/lib.sh"

# json_expr FILE EXPR: EXPR evaluated with the document as d.
json_expr() { /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
mkstep() { mkdir -p "$1" && echo "state $2" >"$1/state.txt" && mkfile "$1/weights.bin" 300; }

# Each save goes into its own step; --keep 2 leaves the two newest.
D=$(loc steps)
for n in 1 2 3 4; do
  mkstep "$TMP/s$n" "$n"
  ck 0 save --json --step next --keep 2 --dest "$D" "$TMP/s$n"
  [ "$(json_get "$TMP/out" '["step"]')" = "$n" ] || fail "save $n went to step $(json_get "$TMP/out" '["step"]')"
done
ck 0 list --json "$D"
[ "$(json_expr "$TMP/out" '[s["step"] for s in d]')" = "[3, 4]" ] || fail "--keep 2 left: $(cat "$TMP/out")"
[ "$(json_expr "$TMP/out" '[s["state"] for s in d]')" = "['complete', 'complete']" ] || fail "states: $(cat "$TMP/out")"
store_keys "$D" | grep -q '^\.ckpt/steps/1/' && fail "step 1 data left after pruning"

# The newest complete step is the checkpoint; --step N picks another; a step is never overwritten.
rm -rf "$TMP/r" && mkdir "$TMP/r"
ck 0 restore --json --src "$D" "$TMP/r"
[ "$(json_get "$TMP/out" '["step"]')" = 4 ] || fail "restored step $(json_get "$TMP/out" '["step"]')"
assert_same_tree "$TMP/s4" "$TMP/r"
rm -rf "$TMP/r" && mkdir "$TMP/r"
ck 0 restore --step 3 --src "$D" "$TMP/r"
assert_same_tree "$TMP/s3" "$TMP/r"
ck 1 save --step 4 --dest "$D" "$TMP/s1"
assert_contains "$TMP/err" "step 4 already exists"
ck 4 exists --step 9 --src "$D"
ck 2 save --step nine --dest "$D" "$TMP/s1"
assert_contains "$TMP/err" "invalid step 'nine'"

# A newer step whose save did not finish (no manifest) is skipped with a warning, and listed
# as incomplete; a damaged newer step too.
store_put "$D" ".ckpt/steps/5/state.txt" "$TMP/s1/state.txt"
ck 0 exists --json --src "$D"
[ "$(json_get "$TMP/out" '["step"]')" = 4 ] || fail "exists picked $(cat "$TMP/out")"
assert_contains "$TMP/err" "steps/5 is incomplete"
ck 0 list --json "$D"
[ "$(json_expr "$TMP/out" '[s["state"] for s in d if s["step"] == 5]')" = "['incomplete']" ] || fail "list: $(cat "$TMP/out")"
# prune keeps the newest complete step and never deletes a newer incomplete one.
ck 0 prune --keep 1 "$D"
ck 0 list --json "$D"
[ "$(json_expr "$TMP/out" '[s["step"] for s in d]')" = "[4, 5]" ] || fail "prune --keep 1 left: $(cat "$TMP/out")"
# A step marked deleted is invisible to readers even before its data is gone.
mkstep "$TMP/s6" 6
ck 0 save --step 6 --keep 0 --dest "$D" "$TMP/s6"
: >"$TMP/empty"
store_put "$D" ".ckpt/steps/6/.ckpt/deleted" "$TMP/empty"
rm -rf "$TMP/r" && mkdir "$TMP/r"
ck 0 restore --src "$D" "$TMP/r"
assert_same_tree "$TMP/s4" "$TMP/r"
ck 0 list --json "$D"
[ "$(json_expr "$TMP/out" '[s["state"] for s in d if s["step"] == 6]')" = "['deleted']" ] || fail "list: $(cat "$TMP/out")"
ck 0 prune --keep 1 "$D"
store_keys "$D" | grep -q '^\.ckpt/steps/6/' && fail "a step marked deleted was not removed by prune"

# Streams and `write` take steps too.
D2=$(loc stream-steps)
echo one | "$CKPT" write -q --step next --dest "$D2" || fail "write --step next"
echo two | "$CKPT" write -q --step next --dest "$D2" || fail "write --step next"
ck 0 read --src "$D2"
[ "$(cat "$TMP/out")" = two ] || fail "read gave $(cat "$TMP/out")"
ck 0 read --step 1 --src "$D2"
[ "$(cat "$TMP/out")" = one ] || fail "read --step 1 gave $(cat "$TMP/out")"

# Fallback sources: the first holding a complete checkpoint is used and named.
EMPTY=$(loc never-written)
BROKEN=$(loc broken)
mkstep "$TMP/b" b
ck 0 save --dest "$BROKEN" "$TMP/b"
store_rm "$BROKEN" weights.bin
rm -rf "$TMP/r" && mkdir "$TMP/r"
ck 0 restore --json --src "$EMPTY" --src "$BROKEN" --src "$D" "$TMP/r"
assert_same_tree "$TMP/s4" "$TMP/r"
assert_contains "$TMP/err" "no checkpoint at $EMPTY"
assert_contains "$TMP/err" "missing weights.bin"
CKPT_SRC="$EMPTY,$D" "$CKPT" exists -q >/dev/null 2>&1 || fail "CKPT_SRC with a comma-separated fallback"
ck 5 exists --src "$EMPTY" --src "$BROKEN"
ck 4 exists --src "$EMPTY" --src '""'
ck 3 exists --src '{{.prevCheckpointPrefix}}'

# Carry-forward: attempt 2 restores attempt 1's checkpoint and copies it to its own
# destination at once, so attempt 3 finds it there even though attempt 2 never saved.
A1=$(loc attempt1) A2=$(loc attempt2)
mkstep "$TMP/p1" progress1
ck 0 save --dest "$A1" "$TMP/p1"
rm -rf "$TMP/r" && mkdir "$TMP/r"
ck 0 restore --json --carry-forward --src "$A1" --dest "$A2" "$TMP/r"
[ "$(json_get "$TMP/out" '["carried_to"]')" = "$A2" ] || fail "not carried forward: $(cat "$TMP/out")"
rm -rf "$TMP/r" && mkdir "$TMP/r"
ck 0 restore --src "$A2" "$TMP/r"
assert_same_tree "$TMP/p1" "$TMP/r"
ck 0 exists --src "$A2"
# Not again once the destination holds its own checkpoint.
mkstep "$TMP/p2" progress2
ck 0 save --dest "$A2" "$TMP/p2"
rm -rf "$TMP/r" && mkdir "$TMP/r"
ck 0 restore --json --carry-forward --src "$A1" --dest "$A2" "$TMP/r"
[ "$(json_get "$TMP/out" '["carried_to"]')" = None ] || fail "carried over a newer checkpoint"
rm -rf "$TMP/r" && mkdir "$TMP/r"
ck 0 restore --src "$A2" "$TMP/r"
assert_same_tree "$TMP/p2" "$TMP/r"
# A stepped checkpoint is carried as the same step.
A3=$(loc attempt3)
rm -rf "$TMP/r" && mkdir "$TMP/r"
ck 0 restore --json --carry-forward --src "$D" --dest "$A3" "$TMP/r"
ck 0 list --json "$A3"
[ "$(json_expr "$TMP/out" '[s["step"] for s in d]')" = "[4]" ] || fail "carried steps: $(cat "$TMP/out")"
echo ok
