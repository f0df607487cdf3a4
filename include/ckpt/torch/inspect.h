// What a torch.save file holds, from its metadata alone (tensor bytes are never read).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "ckpt/status.h"
#include "ckpt/storage.h"

namespace ckpt::torch {

// Zip magic ("PK\x03\x04") or the legacy pre-1.6 torch.save magic.
bool looks_like_torch_file(RandomAccessFile& file);

struct InspectOptions {
  bool stats = false;  // per-tensor statistics: computed elsewhere (a libtorch plugin)
};

// {"format", "archive_prefix", "version", "file_size", "kind", "top_level_keys",
//  "tensors":[{"name","dtype","shape","stride","numel","nbytes","storage","offset",...}],
//  "totals_by_dtype", "parameter_count", "optimizer", "hyperparameters", "unsafe_globals", ...}
// Non-allow-listed globals are reported, never called.
Result<nlohmann::json> inspect(RandomAccessFile& file, const InspectOptions& opts);

std::string render_text(const nlohmann::json& summary);  // for a person at a terminal
std::string render_html(const nlohmann::json& summary);  // a self-contained page

}  // namespace ckpt::torch
