#!/usr/bin/env bash
# kill -9 a save at random moments, into a destination that already holds a complete
# checkpoint: every following restore returns exactly the previous checkpoint or the new one,
# never a mix and never nothing. Flat layout (the interrupted save replaces the same keys) and
# steps (--step next).
. "$(dirname "$0")/lib.sh"

trials=${CKPT_CRASH_TRIALS:-25}
mkdir -p "$TMP/v1" "$TMP/v2"
for i in 1 2 3 4 5 6; do
  mkfile "$TMP/v1/part$i" 8192
  mkfile "$TMP/v2/part$i" 8192
done
mkfile "$TMP/v2/new-in-v2" 512
for mode in flat steps; do
  opts=()
  [ "$mode" = steps ] && opts=(--step next)
  seen_new=0 seen_old=0
  for t in $(seq 1 "$trials"); do
    D=$(loc "crash-$mode-$t")
    ck 0 save "${opts[@]}" --dest "$D" "$TMP/v1"
    "$CKPT" save -q -j 2 "${opts[@]}" --dest "$D" "$TMP/v2" &
    pid=$!
    # Anywhere from before the first byte to after the manifest.
    sleep "0.$(printf %03d $((RANDOM % 50)))"
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for reader in exists restore; do
      rm -rf "$TMP/r" && mkdir "$TMP/r"
      code=0
      if [ $reader = restore ]; then
        "$CKPT" restore -q --src "$D" "$TMP/r" >/dev/null 2>"$TMP/err" || code=$?
      else
        "$CKPT" exists -q --src "$D" >/dev/null 2>"$TMP/err" || code=$?
      fi
      [ $code = 0 ] || fail "$mode trial $t: $reader exited $code after an interrupted save: $(cat "$TMP/err")"
    done
    if diff -r "$TMP/v2" "$TMP/r" >/dev/null; then
      seen_new=$((seen_new + 1))
    elif diff -r "$TMP/v1" "$TMP/r" >/dev/null; then
      seen_old=$((seen_old + 1))
    else
      fail "$mode trial $t: restore returned a mix of versions"
    fi
    # The next save completes and wins, whatever the interrupted one left.
    ck 0 save -q "${opts[@]}" --dest "$D" "$TMP/v2"
    rm -rf "$TMP/r" && mkdir "$TMP/r"
    ck 0 restore -q --src "$D" "$TMP/r"
    assert_same_tree "$TMP/v2" "$TMP/r"
  done
  echo "$mode: trials=$trials new=$seen_new old=$seen_old"
  # The kills must have landed inside saves, or this test proved nothing.
  [ "$seen_old" -gt 0 ] || fail "$mode: no kill interrupted a save; lengthen the saves"
done
echo ok
