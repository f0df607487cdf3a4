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
// dtype is torch's name ("float32", "bfloat16", "int64", "bool", "complex64", ...).
// Returns 0 on success; otherwise writes a message into err (NUL-terminated) and returns -1.
typedef int (*CkptTensorStatsFn)(const char* dtype, const void* storage, size_t storage_bytes,
                                 int64_t offset_elems, int ndim, const int64_t* shape,
                                 const int64_t* stride, CkptTensorStats* out, char* err,
                                 size_t err_len);
inline constexpr const char* kTensorStatsSymbol = "ckpt_tensor_stats";

}  // extern "C"
