#!/usr/bin/env bash
# The interop corpus: generated now by Debian's torch, then inspected and round-tripped through
# ckpt decode/encode back into Python (check_corpus.py states exactly what is compared).
set -euo pipefail
: "${CKPT:?path to the ckpt binary}" "${CKPT_SOURCE_DIR:?}"
. "$CKPT_SOURCE_DIR/tests/e2e/lib.sh"
work=$TMP
here="$CKPT_SOURCE_DIR/tests/torch"
/usr/bin/python3 "$here/make_corpus.py" "$work/corpus"
/usr/bin/python3 "$here/check_corpus.py" "$CKPT" "$work/corpus" "$work/out"
