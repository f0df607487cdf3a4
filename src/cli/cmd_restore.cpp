#include <iostream>

#include <spdlog/spdlog.h>

#include "cli/common.h"

namespace ckpt::cli {

void add_restore_command(CLI::App& app, CliContext& ctx) {
  auto* cmd = app.add_subcommand(
      "restore", "Restore the previous checkpoint into DIR (or a fresh temporary directory)");
  static std::string dir;
  cmd->add_option("DIR", dir, "An existing directory; without one a temporary directory is made");
  add_common_options(*cmd, ctx, true);
  cmd->callback([&ctx] {
    ctx.action = [&ctx] {
      Checkpointer cp(make_config(ctx));
      auto r = cp.restore(dir.empty() ? std::nullopt : std::optional<std::filesystem::path>(dir));
      if (!r.ok()) return finish(r.status(), ctx);
      spdlog::info("restored {} file{} from {} ({} transferred, {} already present){}", r->files,
                   r->files == 1 ? "" : "s", r->source, format_bytes(r->bytes), r->skipped,
                   r->verified ? "" : "; unverified: no manifest");
      if (ctx.json) {
        print_json({{"path", r->dir.string()},
                    {"source", r->source},
                    {"files", r->files},
                    {"downloaded", r->downloaded},
                    {"skipped", r->skipped},
                    {"bytes", r->bytes},
                    {"verified", r->verified},
                    {"unrecorded", r->unrecorded}});
      } else {
        std::cout << r->dir.string() << std::endl;
      }
      return 0;
    };
  });
}

}  // namespace ckpt::cli
