#include <spdlog/spdlog.h>

#include "ckpt/torch/pytorch_checkpoint.h"
#include "cli/common.h"

namespace ckpt::cli {

void add_decode_command(CLI::App& app, CliContext& ctx) {
  auto* cmd = app.add_subcommand(
      "decode",
      "Split a PyTorchCheckpoint into module_state_dict.pt, optimizer_state_dict.pt and "
      "hyperparameters.json (only the parts it holds)");
  static std::string input;
  static std::string dir = ".";
  static bool force = false;
  cmd->add_option("IN", input, "The checkpoint (path or URI)")->required();
  cmd->add_option("-o,--output-dir", dir, "An existing directory for the parts (default: .)");
  cmd->add_flag("-f,--force", force, "Overwrite existing part files");
  add_common_options(*cmd, ctx, true);
  cmd->callback([&ctx] {
    ctx.action = [&ctx] {
      auto r = torch::decode_checkpoint(input, dir, force, make_config(ctx).storage);
      if (!r.ok()) return finish(r.status(), ctx);
      for (const auto* p : {&r->module_path, &r->optimizer_path, &r->hyperparameters_path}) {
        if (!p->empty()) spdlog::info("wrote {}", *p);
      }
      if (ctx.json) {
        auto opt = [](const std::string& s) {
          return s.empty() ? nlohmann::json() : nlohmann::json(s);
        };
        print_json({{"module_state_dict", opt(r->module_path)},
                    {"optimizer_state_dict", opt(r->optimizer_path)},
                    {"hyperparameters_file", opt(r->hyperparameters_path)},
                    {"hyperparameters", nlohmann::json::parse(r->hyperparameters.dump())}});
      }
      return 0;
    };
  });
}

}  // namespace ckpt::cli
