// `inspect --stats`: per-tensor statistics from the libtorch plugin (ckpt-torchstats.so), which
// is loaded here on first use so that nothing else pays libtorch's start-up cost.
#pragma once

#include <nlohmann/json.hpp>

#include "ckpt/status.h"
#include "ckpt/torch/torch_file.h"

namespace ckpt::torch {

// Adds "stats":{min,max,mean,std,nan,inf} to each entry of `tensors` (built by inspect in the
// order for_each_tensor visits them). Storages are CRC-checked before their bytes are used. A
// dtype the plugin cannot handle gets "stats":null and "stats_error".
Status add_tensor_stats(const TorchFile& file, nlohmann::json& tensors);

}  // namespace ckpt::torch
