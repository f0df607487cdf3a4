// ckpt-torchstats.so: per-tensor statistics with ATen over storage bytes the caller owns
// (usually a memory-mapped torch.save file). Only <ATen/ATen.h>: <torch/torch.h> would triple
// the compile time for nothing used here.
//
// Semantics: see include/ckpt/torch/stats_abi.h.
// Values are widened to float64 chunk by chunk, so memory stays bounded whatever the size.
#include <ATen/ATen.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>

#include "ckpt/torch/stats_abi.h"

namespace {

constexpr int64_t kChunk = 1 << 20;  // elements widened at a time

bool scalar_type_of(const std::string& d, at::ScalarType* out) {
  static const std::pair<const char*, at::ScalarType> kTypes[] = {
      {"float32", at::kFloat},         {"float64", at::kDouble},       {"float16", at::kHalf},
      {"bfloat16", at::kBFloat16},     {"complex32", at::kComplexHalf}, {"complex64", at::kComplexFloat},
      {"complex128", at::kComplexDouble}, {"uint8", at::kByte},       {"int8", at::kChar},
      {"int16", at::kShort},           {"int32", at::kInt},            {"int64", at::kLong},
      {"bool", at::kBool},
  };
  for (const auto& [name, t] : kTypes) {
    if (d == name) {
      *out = t;
      return true;
    }
  }
  return false;
}

// Running statistics, merged chunk by chunk (Chan et al.'s pairwise update of the mean and
// the sum of squared deviations, which stays accurate where sum-of-squares would not).
struct Acc {
  int64_t n = 0;
  double mean = 0, m2 = 0;
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();

  void add(const at::Tensor& finite) {  // 1-d float64
    const int64_t k = finite.numel();
    if (k == 0) return;
    const double cmean = finite.mean().item<double>();
    const double cm2 = (finite - cmean).square().sum().item<double>();
    min = std::min(min, finite.min().item<double>());
    max = std::max(max, finite.max().item<double>());
    const double delta = cmean - mean;
    const int64_t total = n + k;
    mean += delta * static_cast<double>(k) / static_cast<double>(total);
    m2 += cm2 + delta * delta * static_cast<double>(n) * static_cast<double>(k) /
                    static_cast<double>(total);
    n = total;
  }
};

struct Counts {
  Acc acc;
  int64_t nan = 0, inf = 0;
};

void visit_chunk(const at::Tensor& t, Counts& c) {
  at::Tensor x = t.reshape({-1});
  if (x.is_complex()) {
    x = x.to(at::kComplexDouble);
    at::Tensor nan = at::isnan(x);
    at::Tensor inf = at::logical_and(at::isinf(x), at::logical_not(nan));
    c.nan += nan.sum().item<int64_t>();
    c.inf += inf.sum().item<int64_t>();
    c.acc.add(at::abs(x.masked_select(at::isfinite(x))));
  } else if (x.is_floating_point()) {
    x = x.to(at::kDouble);
    c.nan += at::isnan(x).sum().item<int64_t>();
    c.inf += at::isinf(x).sum().item<int64_t>();
    c.acc.add(x.masked_select(at::isfinite(x)));
  } else {
    c.acc.add(x.to(at::kDouble));
  }
}

// Walks t in pieces of at most kChunk elements without materialising it whole (t may be a
// strided view of any layout).
void visit(const at::Tensor& t, Counts& c) {
  if (t.dim() == 0 || t.numel() <= kChunk) {
    visit_chunk(t, c);
    return;
  }
  const int64_t rows = t.size(0);
  const int64_t row = t.numel() / rows;
  if (row > kChunk) {
    for (int64_t i = 0; i < rows; ++i) visit(t.select(0, i), c);
    return;
  }
  const int64_t step = std::max<int64_t>(1, kChunk / row);
  for (int64_t i = 0; i < rows; i += step) visit_chunk(t.narrow(0, i, std::min(step, rows - i)), c);
}

int fail(char* err, size_t err_len, const std::string& msg) {
  if (err && err_len) std::snprintf(err, err_len, "%s", msg.c_str());
  return -1;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int ckpt_tensor_stats(
    const char* dtype, const void* storage, size_t storage_bytes, int64_t offset_elems, int ndim,
    const int64_t* shape, const int64_t* stride, CkptTensorStats* out, char* err, size_t err_len) {
  try {
    at::ScalarType st;
    if (!dtype || !scalar_type_of(dtype, &st)) {
      return fail(err, err_len, std::string("statistics of dtype '") + (dtype ? dtype : "?") +
                                    "' are not supported");
    }
    if (ndim < 0 || (ndim > 0 && (!shape || !stride)) || offset_elems < 0) {
      return fail(err, err_len, "invalid tensor geometry");
    }
    const int64_t esize = static_cast<int64_t>(c10::elementSize(st));
    const int64_t storage_numel = static_cast<int64_t>(storage_bytes / esize);
    // Bounds are checked here too: the plugin must never read outside what it was given.
    int64_t numel = 1, last = offset_elems;
    for (int k = 0; k < ndim; ++k) {
      if (shape[k] < 0 || stride[k] < 0) return fail(err, err_len, "negative size or stride");
      numel *= shape[k];
      if (shape[k] > 0 && stride[k] > 0 &&
          shape[k] - 1 > (std::numeric_limits<int64_t>::max() - last) / stride[k]) {
        return fail(err, err_len, "tensor extent overflows");
      }
      if (shape[k] > 0) last += (shape[k] - 1) * stride[k];
    }
    out->numel = numel;
    out->nan_count = out->inf_count = 0;
    const double qnan = std::numeric_limits<double>::quiet_NaN();
    out->min = out->max = out->mean = out->std = qnan;
    if (numel == 0) return 0;
    if (last >= storage_numel || !storage) {
      return fail(err, err_len, "tensor reaches past the end of its storage");
    }
    // from_blob never frees or copies: the bytes stay the caller's.
    at::Tensor base = at::from_blob(const_cast<void*>(storage), {storage_numel},
                                    at::TensorOptions().dtype(st));
    at::Tensor t = base.as_strided(at::IntArrayRef(shape, ndim), at::IntArrayRef(stride, ndim),
                                   offset_elems);
    Counts c;
    visit(t, c);
    out->nan_count = c.nan;
    out->inf_count = c.inf;
    if (c.acc.n > 0) {
      out->min = c.acc.min;
      out->max = c.acc.max;
      out->mean = c.acc.mean;
      if (c.acc.n > 1) out->std = std::sqrt(c.acc.m2 / static_cast<double>(c.acc.n - 1));
    }
    return 0;
  } catch (const std::exception& e) {
    return fail(err, err_len, e.what());
  } catch (...) {
    return fail(err, err_len, "unknown error in the statistics plugin");
  }
}
