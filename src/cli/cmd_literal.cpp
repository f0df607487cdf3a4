#include <filesystem>

#include "ckpt/torch/inspect.h"
#include "ckpt/torch/pytorch_checkpoint.h"
#include "ckpt/torch/torch_file.h"
#include "ckpt/uri.h"
#include "cli/common.h"

namespace ckpt::cli {

void add_literal_command(CLI::App& app, CliContext& ctx) {
  auto* cmd = app.add_subcommand("literal",
                                 "Print the Flyte literal (or, with --type, the literal type) of a "
                                 "PyTorchCheckpoint, as proto3 JSON");
  static std::string uri;
  static bool type_only = false;
  static bool no_check = false;
  cmd->add_option("URI", uri, "Where the checkpoint file is (path, file:// or s3:// URI)");
  cmd->add_flag("--type", type_only, "Print the literal type instead");
  cmd->add_flag("--no-check", no_check, "Do not open URI to check that it holds a torch.save file");
  add_common_options(*cmd, ctx, false);
  cmd->callback([&ctx] {
    ctx.action = [&ctx] {
      if (type_only && uri.empty()) {
        std::printf("%s\n", torch::flyte_literal_type().dump().c_str());
        return 0;
      }
      if (uri.empty())
        return finish(Status(Errc::kInvalidArgument, "literal needs a URI (or --type)"), ctx);
      auto loc = parse_location(uri);
      if (!loc.ok()) return finish(loc.status(), ctx);
      std::string canonical = uri;
      if (loc->is_local())
        canonical = std::filesystem::absolute(loc->path).lexically_normal().string();
      if (!no_check) {
        auto f = torch::open_location(uri, make_config(ctx).storage);
        if (!f.ok()) return finish(f.status(), ctx);
        if (!torch::looks_like_torch_file(*f->file)) {
          return finish(Status(Errc::kInvalidArgument, uri + " is not a torch.save file"), ctx);
        }
      }
      const auto out = type_only ? torch::flyte_literal_type() : torch::flyte_literal(canonical);
      std::printf("%s\n", out.dump().c_str());
      return 0;
    };
  });
}

}  // namespace ckpt::cli
