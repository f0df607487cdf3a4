#include <unistd.h>

#include <spdlog/spdlog.h>

#include "ckpt/io.h"
#include "cli/common.h"

namespace ckpt::cli {
namespace {

nlohmann::json report_json(const SaveReport& r) {
  return {{"destination", r.uri}, {"files", r.files}, {"bytes", r.bytes},
          {"step", r.step ? nlohmann::json(*r.step) : nlohmann::json()},
          {"manifest", r.manifest_key.empty() ? nlohmann::json() : nlohmann::json(r.manifest_key)}};
}

}  // namespace

// Shared by `save -` and `write`: both put a stream at <dest>/_dst_cp.
int save_stream_and_report(ByteSource& src, const CliContext& ctx) {
  Checkpointer cp(make_config(ctx));
  auto r = cp.save_stream(src);
  if (!r.ok()) return finish(r.status(), ctx);
  spdlog::info("saved {} to {}", format_bytes(r->bytes), join_key(r->uri, kStreamKey));
  if (ctx.json) print_json(report_json(*r));
  return 0;
}

void add_save_command(CLI::App& app, CliContext& ctx) {
  auto* cmd = app.add_subcommand(
      "save", "Save a file, a directory's contents, or stdin (-) to the checkpoint destination");
  static std::string path;
  cmd->add_option("PATH", path, "File, directory, or - for stdin (stored as _dst_cp)")->required();
  add_common_options(*cmd, ctx, true);
  add_write_options(*cmd, ctx);
  cmd->callback([&ctx] {
    ctx.action = [&ctx] {
      if (path == "-") {
        FdSource in(STDIN_FILENO, false, "stdin");
        return save_stream_and_report(in, ctx);
      }
      Checkpointer cp(make_config(ctx));
      auto r = cp.save_path(path);
      if (!r.ok()) return finish(r.status(), ctx);
      spdlog::info("saved {} file{} ({}) to {}", r->files, r->files == 1 ? "" : "s",
                   format_bytes(r->bytes), r->uri);
      if (ctx.json) print_json(report_json(*r));
      return 0;
    };
  });
}

}  // namespace ckpt::cli
