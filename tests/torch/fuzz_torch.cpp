// libFuzzer target for the zip container and the restricted pickle: any input must give a
// value or an error, without crashes, leaks or large allocations. Built and run by
// test_torch_fuzz.sh with clang (-fsanitize=fuzzer,address,undefined).
#include <cstddef>
#include <cstdint>
#include <string>

#include "ckpt/io.h"
#include "ckpt/torch/inspect.h"
#include "ckpt/torch/pickle.h"
#include "ckpt/torch/torch_file.h"
#include "mem_file.h"

using namespace ckpt;
using namespace ckpt::torch;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  // The bytes as a pickle on their own.
  for (bool strict : {true, false}) {
    UnpickleOptions o;
    o.strict = strict;
    o.max_values = size * 2 + 16;
    auto doc = unpickle(input, o);
    if (doc.ok()) (void)pickle(*(*doc)->root, {});
  }
  // The bytes as a torch file, mapped (local) and read through read_at (remote).
  for (bool mapped : {true, false}) {
    MemFile f(input, mapped);
    (void)looks_like_torch_file(f);
    auto summary = inspect(f, {});
    if (summary.ok()) (void)render_html(*summary), (void)render_text(*summary);
    auto tf = TorchFile::open(f, /*strict=*/true);
    if (!tf.ok()) continue;
    (void)for_each_tensor(
        **tf, [](const TensorLocation&) { return Status(); }, true);
    StringSink sink;
    (void)write_torch_file((*tf)->root(), {tf->get()}, sink, {});
  }
  return 0;
}
