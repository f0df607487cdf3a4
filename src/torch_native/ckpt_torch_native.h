// ckpt for C++ programs that train with libtorch: a torch::nn::Module, a torch::optim optimizer
// and hyperparameters saved as a flytekit PyTorchCheckpoint (one torch.save'd dict with
// "module_state_dict", "optimizer_state_dict" and each hyperparameter as a top-level key), in
// the layout Python uses, so that Python loads it with torch.load(path, weights_only=True) and
// module.load_state_dict / optimizer.load_state_dict; and the reverse.
//
// Layouts written (those of torch 1.13's Python classes):
// - module: an OrderedDict of every parameter and buffer, detached, with Python's dotted names
//   ("0.weight", "encoder.fc1.bias", "bn.running_mean"), in Python's order (each module's own
//   parameters, then its buffers, then its children).
// - optimizer: {"state": {index: {...}}, "param_groups": [{..., "params": [index, ...]}]},
//   parameters numbered across groups in order. SGD: "momentum_buffer"; Adam and AdamW: "step"
//   (a float32 0-d tensor), "exp_avg", "exp_avg_sq", and "max_exp_avg_sq" with amsgrad.
// Tensors that share storage (tied weights, views) still share it in the file.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include "ckpt/status.h"
#include "ckpt/storage.h"

namespace ckpt::torch_native {

// Parameters and buffers with Python's names, in Python's state_dict order.
std::vector<std::pair<std::string, at::Tensor>> module_state_dict(const ::torch::nn::Module& module);

struct SaveOptions {
  StorageOptions storage;  // for remote locations (s3://...) and local durability
  std::string archive_name = "archive";  // the top folder inside the zip, as torch.save to a stream
};

// Writes a PyTorchCheckpoint to a local path or any location ckpt can write (atomically for
// local paths). module and optimizer may be null and hyperparameters empty, but not all three.
// Hyperparameters must be a JSON object; each key becomes a top-level key of the file.
// Supported optimizers: SGD, Adam, AdamW (others: Errc::kUnsupported).
Status save_checkpoint(const std::string& uri, const ::torch::nn::Module* module,
                       const ::torch::optim::Optimizer* optimizer,
                       const nlohmann::ordered_json& hyperparameters = nlohmann::ordered_json::object(),
                       const SaveOptions& opts = {});

struct LoadOptions {
  StorageOptions storage;
  // Module: every parameter and buffer must be in the file and nothing else (like Python's
  // load_state_dict(strict=True)). When false, missing and unexpected names are ignored.
  bool strict = true;
};

struct LoadResult {
  nlohmann::ordered_json hyperparameters = nlohmann::ordered_json::object();
  bool module_loaded = false;
  bool optimizer_loaded = false;
};

// Reads a PyTorchCheckpoint (written by Python, flytekit or save_checkpoint) into module and
// optimizer (either may be null: that part is then not read). Nothing in the file is executed:
// globals outside torch.load(weights_only=True)'s allow-list make this fail. Values are copied
// into the module's existing tensors (shapes must match; dtypes are converted). The optimizer
// must have the same parameter groups and counts as when it was saved; its hyperparameters
// (lr, betas, ...) and per-parameter state are replaced by the file's. Asking for a part the
// file does not hold is an error (Errc::kNotFound).
Result<LoadResult> load_checkpoint(const std::string& uri, ::torch::nn::Module* module,
                                   ::torch::optim::Optimizer* optimizer,
                                   const LoadOptions& opts = {});

}  // namespace ckpt::torch_native
