#include <iostream>

#include "cli/common.h"

namespace ckpt::cli {

void add_exists_command(CLI::App& app, CliContext& ctx) {
  auto* cmd = app.add_subcommand(
      "exists", "Exit 0 only if a complete previous checkpoint is there (3, 4 or 5 otherwise)");
  static bool quick = false;
  cmd->add_flag("--quick", quick, "Check presence and sizes only, not checksums");
  add_common_options(*cmd, ctx, true);
  cmd->callback([&ctx] {
    ctx.action = [&ctx] {
      Checkpointer cp(make_config(ctx));
      ExistsReport r = cp.exists(!quick);
      if (ctx.json) {
        print_json({{"configured", r.configured},
                    {"source", r.source.empty() ? nlohmann::json() : nlohmann::json(r.source)},
                    {"exists", r.status.ok()},
                    {"state", r.state},
                    {"files", r.files},
                    {"bytes", r.bytes},
                    {"verified", r.verified},
                    {"step", r.step ? nlohmann::json(*r.step) : nlohmann::json()},
                    {"problems", r.problems},
                    {"exit_code", exit_code(r.status.code())}});
      } else if (!ctx.quiet) {
        std::cout << "previous checkpoint configured: "
                  << (r.configured ? "yes (" + r.source + ")" : std::string("no")) << "\n";
        if (r.configured) {
          std::cout << "state: " << r.state;
          if (r.step) std::cout << " (step " << *r.step << ")";
          if (r.state == "complete" || r.state == "unverified") {
            std::cout << " (" << r.files << " file" << (r.files == 1 ? "" : "s") << ", "
                      << format_bytes(r.bytes) << ", "
                      << (r.verified ? "checksums verified"
                                     : r.state == "unverified" ? "no manifest to verify against"
                                                               : "sizes checked")
                      << ")";
          }
          std::cout << "\n";
          for (const auto& p : r.problems) std::cout << "  " << p << "\n";
        }
        std::cout.flush();
      }
      // The answer is on stdout; stderr only carries real failures.
      if (r.status.code() == Errc::kNotConfigured || r.status.code() == Errc::kNoCheckpoint) {
        return exit_code(r.status.code());
      }
      return finish(r.status, ctx);
    };
  });
}

}  // namespace ckpt::cli
