// flytekit's PyTorchCheckpoint: torch.save of ONE flat dict holding module_state_dict,
// optimizer_state_dict and every hyperparameter as its own top-level key.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "ckpt/status.h"
#include "ckpt/storage.h"
#include "ckpt/torch/pickle.h"

namespace ckpt::torch {

inline constexpr const char* kModuleKey = "module_state_dict";
inline constexpr const char* kOptimizerKey = "optimizer_state_dict";
inline constexpr const char* kBlobFormat = "PyTorchCheckpoint";

struct EncodeRequest {
  std::string module;     // a torch.save'd state_dict (path or URI); empty: none
  std::string optimizer;  // a torch.save'd optimizer state_dict; empty: none
  nlohmann::ordered_json hyperparameters = nlohmann::ordered_json::object();
  std::string output;  // path or URI; "-" for stdout
  StorageOptions storage;
};
Status encode_checkpoint(const EncodeRequest& req);

// "KEY=VALUE": VALUE as JSON when it parses as JSON (1, 0.5, true, null, [..], "s"), else as a
// string. Adds to/overrides `into`.
Status parse_hparam(const std::string& kv, nlohmann::ordered_json& into);

struct DecodeResult {
  std::string module_path, optimizer_path, hyperparameters_path;  // empty when not written
  nlohmann::ordered_json hyperparameters;
};
// Splits a checkpoint into <dir>/module_state_dict.pt, <dir>/optimizer_state_dict.pt and
// <dir>/hyperparameters.json (only the parts present). Refuses to overwrite unless `force`.
Result<DecodeResult> decode_checkpoint(const std::string& input, const std::string& dir, bool force,
                                       const StorageOptions& storage = {});

// JSON <-> values, for hyperparameters. value_to_json fails (naming `where`) on what JSON
// cannot hold: tensors, bytes, sets, non-finite floats, non-string dict keys.
Result<Value*> json_to_value(const nlohmann::ordered_json& j, Document& doc);
Result<nlohmann::ordered_json> value_to_json(const Value& v, const std::string& where);
// The same for display: never fails, renders what JSON cannot hold as descriptive strings.
nlohmann::json value_to_display_json(const Value& v, size_t depth = 0);

// Flyte literal type and literal of a PyTorchCheckpoint blob, in proto3 JSON form.
nlohmann::ordered_json flyte_literal_type();
nlohmann::ordered_json flyte_literal(const std::string& uri);

}  // namespace ckpt::torch
