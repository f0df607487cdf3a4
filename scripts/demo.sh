#!/usr/bin/env bash
# The README's demo command: installs what is missing, builds, and walks through a
# preemptible job's checkpoint life cycle on the local filesystem.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh build-demo -DCKPT_BUILD_TESTS=OFF >/dev/null
CKPT=$PWD/build-demo/ckpt
work=$(mktemp -d "${TMPDIR:-/tmp}/ckpt-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
export NO_COLOR=1
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
show() { step "$*"; set +e; "$@"; echo "(exit status $?)"; set -e; }

echo "Attempt 1 of a training task: nothing to resume from."
show "$CKPT" exists --prev-checkpoint '""'
mkdir -p scratch/ckpt
head -c 3000000 /dev/urandom >scratch/ckpt/model.pt
head -c 1000000 /dev/urandom >scratch/ckpt/optimizer.pt
echo '{"epoch": 1, "lr": 0.001}' >scratch/ckpt/meta.json
show "$CKPT" save --checkpoint-path store/attempt-1/_flytecheckpoints scratch/ckpt

echo; echo "Attempt 2: the previous attempt's checkpoint is complete, restore it."
show "$CKPT" exists --prev-checkpoint store/attempt-1/_flytecheckpoints
mkdir -p resume
show "$CKPT" restore --prev-checkpoint store/attempt-1/_flytecheckpoints resume
show diff -r scratch/ckpt resume
echo "A second restore transfers nothing already there and verified:"
show "$CKPT" restore --prev-checkpoint store/attempt-1/_flytecheckpoints resume --json
show "$CKPT" inspect store/attempt-1/_flytecheckpoints

echo; echo "Single-blob checkpoints (flytekit's write/read):"
step "echo 'step=42' | $CKPT write --checkpoint-path store/blob"
echo 'step=42' | "$CKPT" write --checkpoint-path store/blob
show "$CKPT" read --prev-checkpoint store/blob

echo; echo "Exit codes tell the cases apart:"
show "$CKPT" exists --prev-checkpoint '{{.prevCheckpointPrefix}}'   # 3: not configured
show "$CKPT" exists --prev-checkpoint store/never-written          # 4: nothing there
head -c 1000 /dev/urandom >store/attempt-1/_flytecheckpoints/model.pt  # a torn upload
show "$CKPT" exists --prev-checkpoint store/attempt-1/_flytecheckpoints # 5: incomplete
mkdir -p fresh
show "$CKPT" restore --prev-checkpoint store/attempt-1/_flytecheckpoints fresh
show ls -A fresh
echo; echo "Demo finished: every step above ran the real binary at $CKPT."
