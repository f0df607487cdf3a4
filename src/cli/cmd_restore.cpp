#include <iostream>

#include <spdlog/spdlog.h>

#include "cli/common.h"

namespace ckpt::cli {

void add_restore_command(CLI::App& app, CliContext& ctx) {
  auto* cmd = app.add_subcommand(
      "restore", "Restore the previous checkpoint into DIR (or a fresh temporary directory)");
  static std::string dir;
  static bool carry = false;
  cmd->add_option("DIR", dir, "An existing directory; without one a temporary directory is made");
  cmd->add_flag("--carry-forward,!--no-carry-forward", carry,
                "Then copy the restored checkpoint to --dest if that holds none yet (server-side "
                "where possible), so the next attempt finds it even if this one dies early")
      ->envname("CKPT_CARRY_FORWARD");
  add_common_options(*cmd, ctx, true);
  cmd->callback([&ctx] {
    ctx.action = [&ctx] {
      auto config = make_config(ctx);
      config.carry_forward = carry;
      Checkpointer cp(std::move(config));
      auto r = cp.restore(dir.empty() ? std::nullopt : std::optional<std::filesystem::path>(dir));
      if (!r.ok()) return finish(r.status(), ctx);
      spdlog::info("restored {} file{} from {} ({} transferred, {} already present){}", r->files,
                   r->files == 1 ? "" : "s", r->source, format_bytes(r->bytes), r->skipped,
                   r->verified ? "" : "; unverified: no manifest");
      if (!r->carried_to.empty()) spdlog::info("carried forward to {}", r->carried_to);
      if (ctx.json) {
        print_json({{"path", r->dir.string()},
                    {"source", r->source},
                    {"files", r->files},
                    {"downloaded", r->downloaded},
                    {"skipped", r->skipped},
                    {"bytes", r->bytes},
                    {"verified", r->verified},
                    {"step", r->step ? nlohmann::json(*r->step) : nlohmann::json()},
                    {"carried_to", r->carried_to.empty() ? nlohmann::json() : nlohmann::json(r->carried_to)},
                    {"unrecorded", r->unrecorded}});
      } else {
        std::cout << r->dir.string() << std::endl;
      }
      return 0;
    };
  });
}

}  // namespace ckpt::cli
