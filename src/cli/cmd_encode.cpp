#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "ckpt/torch/pytorch_checkpoint.h"
#include "cli/common.h"

namespace ckpt::cli {

void add_encode_command(CLI::App& app, CliContext& ctx) {
  auto* cmd = app.add_subcommand(
      "encode",
      "Build a flytekit PyTorchCheckpoint (.pt) from a module state_dict, an optimizer state_dict "
      "and hyperparameters; loads with torch.load(path, weights_only=True)");
  static torch::EncodeRequest req;
  static std::vector<std::string> hparams;
  static std::string hparams_file;
  cmd->add_option("-o,--output", req.output,
                  "Where to write the checkpoint (path, file:// or s3:// URI, - for stdout)")
      ->required();
  cmd->add_option("--module", req.module,
                  "A module state_dict written by torch.save (path or URI)");
  cmd->add_option("--optimizer", req.optimizer,
                  "An optimizer state_dict written by torch.save (path or URI)");
  cmd->add_option("--hparams", hparams_file, "Hyperparameters: a JSON file holding one object");
  cmd->add_option(
      "--hparam", hparams,
      "One hyperparameter KEY=VALUE; VALUE is read as JSON when it parses (0.1, 10, true, "
      "[1,2], \"text\"), else as a string. Repeatable; overrides --hparams");
  add_common_options(*cmd, ctx, true);
  cmd->add_flag("--fsync", ctx.fsync, "Make the output durable (fsync) before renaming it into place")
      ->envname("CKPT_FSYNC");
  cmd->callback([&ctx] {
    ctx.action = [&ctx] {
      req.hyperparameters = nlohmann::ordered_json::object();
      if (!hparams_file.empty()) {
        std::ifstream in(hparams_file);
        if (!in)
          return finish(Status(Errc::kNotFound, "cannot open hyperparameters file " + hparams_file),
                        ctx);
        std::stringstream text;
        text << in.rdbuf();
        auto j = nlohmann::ordered_json::parse(text.str(), nullptr, false);
        if (j.is_discarded() || !j.is_object()) {
          return finish(
              Status(Errc::kInvalidArgument, hparams_file + " does not hold a JSON object"), ctx);
        }
        req.hyperparameters = std::move(j);
      }
      for (const auto& kv : hparams) {
        Status st = torch::parse_hparam(kv, req.hyperparameters);
        if (!st.ok()) return finish(st, ctx);
      }
      req.storage = make_config(ctx).storage;
      Status st = torch::encode_checkpoint(req);
      if (!st.ok()) return finish(st, ctx);
      spdlog::info("wrote PyTorchCheckpoint {}", req.output);
      if (ctx.json && req.output != "-") {
        print_json({{"output", req.output},
                    {"module_state_dict", !req.module.empty()},
                    {"optimizer_state_dict", !req.optimizer.empty()},
                    {"hyperparameters", nlohmann::json::parse(req.hyperparameters.dump())}});
      }
      return 0;
    };
  });
}

}  // namespace ckpt::cli
