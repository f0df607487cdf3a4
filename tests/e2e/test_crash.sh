#!/usr/bin/env bash
# kill -9 a save at random moments: every following restore returns a complete checkpoint
# (the previous one or the new one) or exits 5, never a mix.
. "$(dirname "$0")/lib.sh"

trials=${CKPT_CRASH_TRIALS:-25}
mkdir -p "$TMP/v1" "$TMP/v2"
for i in 1 2 3 4 5 6; do
  mkfile "$TMP/v1/part$i" 4096
  mkfile "$TMP/v2/part$i" 4096
done
mkfile "$TMP/v2/new-in-v2" 512
seen_new=0 seen_old=0 seen_corrupt=0
for t in $(seq 1 "$trials"); do
  D=$(loc crash$t)
  ck 0 save --dest "$D" "$TMP/v1"
  "$CKPT" save -q -j 2 --dest "$D" "$TMP/v2" &
  pid=$!
  # Anywhere from before the first byte to after the manifest.
  sleep "0.$(printf '%03d' $((RANDOM % 70)))"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$TMP/r" && mkdir "$TMP/r"
  code=0
  "$CKPT" restore -q --src "$D" "$TMP/r" >/dev/null 2>"$TMP/err" || code=$?
  case $code in
    0)
      if diff -r "$TMP/v2" "$TMP/r" >/dev/null; then
        seen_new=$((seen_new + 1))
      elif diff -r "$TMP/v1" "$TMP/r" >/dev/null; then
        seen_old=$((seen_old + 1))
      else
        fail "trial $t: restore returned a mix of versions"
      fi
      ;;
    5)
      [ -z "$(ls -A "$TMP/r")" ] || fail "trial $t: exit 5 but files were restored"
      seen_corrupt=$((seen_corrupt + 1))
      ;;
    *) fail "trial $t: restore exited $code: $(cat "$TMP/err")" ;;
  esac
done
echo "trials=$trials new=$seen_new old=$seen_old refused=$seen_corrupt"

# The kills must have landed inside saves, or this test proved nothing.
[ $((seen_old + seen_corrupt)) -gt 0 ] || fail "no kill interrupted a save; lengthen the saves"
echo ok
