// C ABI of the libtorch statistics plugin (ckpt-torchstats.so), loaded only by
// `inspect --stats` so that no other command pays libtorch's start-up cost.
#pragma once

#include <stddef.h>
#include <stdint.h>

extern "C" {

struct CkptTensorStats {
  double min, max, mean, std;  // over finite values; NaN when there are none
  int64_t numel;
  int64_t nan_count, inf_count;
};

// Computes statistics of one tensor viewed over raw little-endian storage bytes.
// - floating dtypes: nan/inf count NaN and +-Inf; min/max/mean/std are over the finite values.
// - complex dtypes: an element counts as NaN if either part is NaN, else as Inf if either part
//   is infinite; min/max/mean/std are over the magnitudes |z| of the finite elements.
// - integer dtypes: every value is finite (int64 beyond 2^53 is rounded to double); bool
//   counts as 0/1, so mean is the fraction of true values.
// - std is the sample standard deviation (n - 1), as torch.std computes it; NaN for fewer than
//   two finite values. min/max/mean are NaN when no value is finite.
// Quantized and float8 dtypes are refused (-1). The bytes are only read, never kept.
// dtype is torch's name ("float32", "bfloat16", "int64", "bool", "complex64", ...).
// Returns 0 on success; otherwise writes a message into err (NUL-terminated) and returns -1.
typedef int (*CkptTensorStatsFn)(const char* dtype, const void* storage, size_t storage_bytes,
                                 int64_t offset_elems, int ndim, const int64_t* shape,
                                 const int64_t* stride, CkptTensorStats* out, char* err,
                                 size_t err_len);
inline constexpr const char* kTensorStatsSymbol = "ckpt_tensor_stats";

}  // extern "C"
