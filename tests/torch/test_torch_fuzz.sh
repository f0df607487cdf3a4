#!/usr/bin/env bash
# Builds the libFuzzer target for the zip and pickle readers with clang under ASan+UBSan and
# runs it for a bounded time (CKPT_FUZZ_SECONDS, default 60) from a seed corpus of real torch
# files. Any crash, leak, sanitizer report or allocation above 256 MiB fails the test.
set -euo pipefail
: "${CKPT_SOURCE_DIR:?}"
secs="${CKPT_FUZZ_SECONDS:-60}"
command -v clang++ > /dev/null || { echo "FAIL: clang++ is required (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }
. "$CKPT_SOURCE_DIR/tests/e2e/lib.sh"
work=$TMP
src="$CKPT_SOURCE_DIR"
inc=("-I$src/include" "-I$src/src" "-I$src/tests/torch")
# The core pieces the format layer needs, compiled in (no CMake: clang may not be the project's compiler).
core=("$src/src/core/status.cpp" "$src/src/core/io.cpp" "$src/src/core/hash.cpp" "$src/src/core/uri.cpp"
      "$src/src/storage/local.cpp" "$src/src/storage/registry.cpp")
clang++ -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -DCKPT_PLUGIN_RELDIR='"../lib/ckpt"' -DCKPT_VERSION='"fuzz"' "${inc[@]}" \
  "$src/tests/torch/fuzz_torch.cpp" "$src"/src/torch/*.cpp "${core[@]}" \
  -o "$work/fuzz_torch" -lz -lxxhash -lspdlog -lfmt -ldl -lpthread
mkdir -p "$work/seeds"
/usr/bin/python3 - "$work/seeds" <<'PY'
import collections, io, sys, torch
out = sys.argv[1]
objs = {
    "sd": torch.nn.Linear(3, 2).state_dict(),
    "flyte": {"module_state_dict": torch.nn.Linear(2, 1).state_dict(), "lr": 0.1, "b": b"x", "s": {1}},
    "views": collections.OrderedDict(a=torch.arange(6.).reshape(2, 3), b=torch.arange(6.).reshape(2, 3).t()),
}
for name, obj in objs.items():
    buf = io.BytesIO()
    torch.save(obj, buf)
    open(f"{out}/{name}.pt", "wb").write(buf.getvalue())
    import zipfile
    z = zipfile.ZipFile(buf)
    open(f"{out}/{name}.pkl", "wb").write(z.read([n for n in z.namelist() if n.endswith("data.pkl")][0]))
PY
cd "$work"
ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 \
  ./fuzz_torch -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=256 -max_len=8192 \
  -print_final_stats=1 seeds 2>&1 | tail -25
echo "fuzzed for ${secs}s without findings"
