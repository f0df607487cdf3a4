#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, and runs every test, then
# the same suite again under AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
scripts/build.sh build
ctest --test-dir build --output-on-failure
if [ "${CKPT_SKIP_SANITIZERS:-0}" != 1 ]; then
  scripts/build.sh build-asan -DCKPT_SANITIZE=ON
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure
fi
