#!/usr/bin/env bash
# Ranks of a distributed job save their shards into one destination at the same time; no
# save may lose another's files or their record.
. "$(dirname "$0")/lib.sh"

D=$(loc shared)
ranks=6
for round in 1 2 3; do
  for r in $(seq 0 $((ranks - 1))); do
    mkdir -p "$TMP/rank$r/shards"
    mkfile "$TMP/rank$r/shards/rank$r.pt" $((200 + r * 10))
    echo "round $round rank $r" >"$TMP/rank$r/shards/rank$r.meta"
  done
  pids=()
  for r in $(seq 0 $((ranks - 1))); do
    "$CKPT" save -q --dest "$D" "$TMP/rank$r" & pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || fail "a concurrent save failed"; done
  rm -rf "$TMP/r" && mkdir "$TMP/r"
  ck 0 restore --src "$D" "$TMP/r" --json
  [ "$(json_get "$TMP/out" '["verified"]')" = True ] || fail "not verified"
  [ "$(json_get "$TMP/out" '["unrecorded"]')" = "[]" ] || fail "a save's record was lost"
  for r in $(seq 0 $((ranks - 1))); do
    cmp "$TMP/rank$r/shards/rank$r.pt" "$TMP/r/shards/rank$r.pt" || fail "round $round: rank $r shard"
    [ "$(cat "$TMP/r/shards/rank$r.meta")" = "round $round rank $r" ] || fail "rank $r meta"
  done
done
ck 0 exists --src "$D"
echo ok
