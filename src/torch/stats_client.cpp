#include "stats_client.h"

#include <cmath>
#include <map>
#include <string>

#include "ckpt/storage.h"
#include "ckpt/torch/stats_abi.h"

namespace ckpt::torch {
namespace {

nlohmann::json number_or_null(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

}  // namespace

Status add_tensor_stats(const TorchFile& file, nlohmann::json& tensors) {
  CKPT_ASSIGN_OR_RETURN(void* sym, load_plugin_symbol("torchstats", kTensorStatsSymbol));
  auto fn = reinterpret_cast<CkptTensorStatsFn>(sym);
  // Unmapped (remote) files: one storage in memory at a time, reused by consecutive tensors
  // that share it (views and state_dict entries usually come in storage order).
  std::string held_key;
  std::string held;
  std::map<std::string, bool> verified;
  size_t index = 0;
  return for_each_tensor(
      file,
      [&](const TensorLocation& loc) -> Status {
        if (index >= tensors.size()) return Status(Errc::kInternal, "tensor list out of step");
        nlohmann::json& entry = tensors[index++];
        const TensorRef& t = *loc.tensor;
        const uint8_t* bytes = loc.data;
        if (bytes) {
          auto& ok = verified[t.storage_key];
          if (!ok) {  // the statistics would be of corrupt bytes otherwise
            CKPT_RETURN_IF_ERROR(file.zip().verify(*loc.record));
            ok = true;
          }
        } else {
          if (held_key != t.storage_key || held.size() != loc.storage_bytes) {
            held.clear();
            held_key.clear();
            CKPT_ASSIGN_OR_RETURN(held, file.zip().read(*loc.record, loc.storage_bytes));
            held_key = t.storage_key;
          }
          bytes = reinterpret_cast<const uint8_t*>(held.data());
        }
        CkptTensorStats s{};
        char err[512] = {};
        const int rc = fn(t.dtype.c_str(), bytes, loc.storage_bytes, t.offset,
                          static_cast<int>(t.shape.size()), t.shape.data(), t.stride.data(), &s,
                          err, sizeof err);
        if (rc != 0) {
          entry["stats"] = nullptr;
          entry["stats_error"] = err;
          return {};
        }
        entry["stats"] = {{"min", number_or_null(s.min)},   {"max", number_or_null(s.max)},
                          {"mean", number_or_null(s.mean)}, {"std", number_or_null(s.std)},
                          {"nan", s.nan_count},             {"inf", s.inf_count}};
        return {};
      },
      /*resolve_offsets=*/true);
}

}  // namespace ckpt::torch
