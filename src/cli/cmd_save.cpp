#include <unistd.h>

#include <spdlog/spdlog.h>

#include "ckpt/async.h"
#include "ckpt/io.h"
#include "cli/common.h"

namespace ckpt::cli {
namespace {

nlohmann::json report_json(const SaveReport& r) {
  return {{"destination", r.uri}, {"files", r.files}, {"bytes", r.bytes},
          {"step", r.step ? nlohmann::json(*r.step) : nlohmann::json()},
          {"manifest", r.manifest_key.empty() ? nlohmann::json() : nlohmann::json(r.manifest_key)}};
}

// A background failure is never silent: every save says which earlier ones failed (`wait`
// acknowledges them).
void report_background_failures(const CliContext& ctx) {
  if (is_unset_location(ctx.dest)) return;
  auto failed = async::failures(ctx.dest, false);
  if (!failed.ok()) return;
  for (const auto& j : *failed) {
    spdlog::error("an earlier background save of {} failed: {} (see `ckpt status`)", j.path, j.message);
  }
}

int save_async(const std::string& path, const std::string& staging, const CliContext& ctx) {
  async::SaveOptions options;
  options.config = make_config(ctx);
  options.staging = staging;
  auto job = async::save(options, path);
  if (!job.ok()) return finish(job.status(), ctx);
  spdlog::info("snapshot of {} taken ({} file{}, {}, {}); uploading to {} in the background",
               job->path, job->files, job->files == 1 ? "" : "s", format_bytes(job->bytes),
               job->reflinked ? "reflinked" : "copied", ctx.dest);
  if (ctx.json) {
    print_json({{"id", job->id},
                {"state", job->state},
                {"path", job->path},
                {"files", job->files},
                {"bytes", job->bytes},
                {"reflinked", job->reflinked},
                {"destination", async::canonical_dest(ctx.dest).value()}});
  }
  return 0;
}

}  // namespace

// Shared by `save -` and `write`: both put a stream at <dest>/_dst_cp.
int save_stream_and_report(ByteSource& src, const CliContext& ctx) {
  report_background_failures(ctx);
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
  static std::string path, staging;
  static bool background = false;
  cmd->add_option("PATH", path, "File, directory, or - for stdin (stored as _dst_cp)")->required();
  cmd->add_flag("--async", background,
                "Snapshot PATH into a staging directory and return; a background uploader saves "
                "it (see `ckpt wait` and `ckpt status`)")
      ->envname("CKPT_ASYNC");
  cmd->add_option("--staging", staging,
                  "With --async: where snapshots go, on PATH's filesystem for reflinks (default: "
                  "<PATH's parent>/.ckpt-staging)")
      ->envname("CKPT_STAGING");
  add_common_options(*cmd, ctx, true);
  add_write_options(*cmd, ctx);
  cmd->callback([&ctx] {
    ctx.action = [&ctx] {
      if (background) {
        report_background_failures(ctx);
        return save_async(path, staging, ctx);
      }
      if (path == "-") {
        FdSource in(STDIN_FILENO, false, "stdin");
        return save_stream_and_report(in, ctx);
      }
      report_background_failures(ctx);
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
