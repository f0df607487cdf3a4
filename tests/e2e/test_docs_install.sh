#!/usr/bin/env bash
# The man page renders without warnings and documents every option --help shows; the
# installed tree runs on its own and carries the man page.
. "$(dirname "$0")/lib.sh"
SRC=${CKPT_SOURCE_DIR:?}
warnings=$(groff -man -ww -z "$SRC/man/ckpt.1" 2>&1)
[ -z "$warnings" ] || fail "groff warnings: $warnings"
for c in save restore read write exists inspect encode decode literal list prune wait status run; do
  "$CKPT" "$c" --help >"$TMP/help"
  for opt in $(grep -oE -- '--[a-z][a-z-]+' "$TMP/help" | sort -u); do
    [ "$opt" = "--help" ] && continue
    grep -qF -- "${opt//-/\\-}" "$SRC/man/ckpt.1" || fail "man page lacks $opt ($c)"
    grep -qF -- "$opt" "$SRC/README.md" || fail "README lacks $opt ($c)"
  done
done
cmake --install "$(dirname "$CKPT")" --prefix "$TMP/inst" >/dev/null || fail "cmake --install"
[ -f "$TMP/inst/share/man/man1/ckpt.1" ] || fail "man page not installed"
mkdir -p "$TMP/d" && echo x >"$TMP/d/f"
env -u LD_LIBRARY_PATH "$TMP/inst/bin/ckpt" save -q --dest "$TMP/s" "$TMP/d" || fail "installed binary does not run"
"$TMP/inst/bin/ckpt" exists -q --src "$TMP/s" || fail "installed binary: exists"
echo ok
