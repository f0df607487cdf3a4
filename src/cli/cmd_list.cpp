#include <ctime>
#include <iostream>

#include <spdlog/spdlog.h>

#include "cli/common.h"

namespace ckpt::cli {
namespace {

std::string iso_time(int64_t ns) {
  if (ns <= 0) return "-";
  std::time_t t = static_cast<std::time_t>(ns / 1000000000);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

// The engine, pointed at LOCATION, else the destination, else the (first) previous checkpoint.
Checkpointer checkpointer_for(const std::string& location, const CliContext& ctx) {
  CheckpointConfig config = make_config(ctx);
  config.dest = location;
  for (size_t i = 0; config.dest.empty() && i <= ctx.sources.size(); ++i) {
    const std::string& candidate = i == 0 ? ctx.dest : ctx.sources[i - 1];
    if (!is_unset_location(candidate)) config.dest = candidate;
  }
  return Checkpointer(std::move(config));
}

}  // namespace

void add_list_command(CLI::App& app, CliContext& ctx) {
  auto* cmd = app.add_subcommand(
      "list", "List the steps of a checkpoint location (default: the destination) with their state");
  static std::string location;
  cmd->add_option("LOCATION", location, "Checkpoint location (default: --dest, else --src)");
  add_common_options(*cmd, ctx, true);
  cmd->callback([&ctx] {
    ctx.action = [&ctx] {
      auto rows = checkpointer_for(location, ctx).list();
      if (!rows.ok()) return finish(rows.status(), ctx);
      if (ctx.json) {
        nlohmann::json doc = nlohmann::json::array();
        for (const auto& r : *rows) {
          doc.push_back({{"step", r.step ? nlohmann::json(*r.step) : nlohmann::json()},
                         {"state", r.state},
                         {"files", r.files},
                         {"bytes", r.bytes},
                         {"committed", r.committed_ns ? nlohmann::json(iso_time(r.committed_ns))
                                                      : nlohmann::json()},
                         {"problems", r.problems}});
        }
        print_json(doc);
      } else {
        std::printf("%-8s  %-10s  %6s  %10s  %s\n", "STEP", "STATE", "FILES", "SIZE", "COMMITTED");
        for (const auto& r : *rows) {
          std::printf("%-8s  %-10s  %6zu  %10s  %s\n", r.step ? std::to_string(*r.step).c_str() : "(flat)",
                      r.state.c_str(), r.files, format_bytes(r.bytes).c_str(),
                      iso_time(r.committed_ns).c_str());
          for (const auto& p : r.problems) std::printf("          %s\n", p.c_str());
        }
        std::fflush(stdout);
      }
      return 0;
    };
  });
}

void add_prune_command(CLI::App& app, CliContext& ctx) {
  auto* cmd = app.add_subcommand(
      "prune", "Delete all but the newest K complete steps of a location (default: the destination)");
  static std::string location;
  static unsigned keep = 0;
  cmd->add_option("LOCATION", location, "Checkpoint location (default: --dest)");
  // No CKPT_KEEP here: CLI11 checks every subcommand's environment variables, and a
  // CKPT_KEEP=0 meant for saves ("keep all") would then break every command.
  cmd->add_option("--keep", keep, "Complete steps to keep (at least 1)")
      ->required()
      ->check(CLI::Range(1u, 1000000u));
  add_common_options(*cmd, ctx, true);
  cmd->callback([&ctx] {
    ctx.action = [&ctx] {
      auto r = checkpointer_for(location, ctx).prune(keep);
      if (!r.ok()) return finish(r.status(), ctx);
      if (ctx.json) {
        print_json({{"deleted", r->deleted}, {"kept", r->kept}});
      } else {
        spdlog::info("kept step{} {}; deleted {}", r->kept.size() == 1 ? "" : "s",
                     nlohmann::json(r->kept).dump(), nlohmann::json(r->deleted).dump());
      }
      return 0;
    };
  });
}

}  // namespace ckpt::cli
