// `wait`, `status` and the hidden `__upload`: the command-line side of asynchronous saves.
#include <iostream>

#include <spdlog/spdlog.h>

#include "ckpt/async.h"
#include "ckpt/run.h"
#include "cli/common.h"

namespace ckpt::cli {
namespace {

nlohmann::json job_json(const async::Job& j) {
  nlohmann::json out = {{"id", j.id},       {"state", j.state},   {"path", j.path},
                        {"files", j.files}, {"bytes", j.bytes},   {"attempts", j.attempts},
                        {"reflinked", j.reflinked}};
  if (j.step) out["step"] = *j.step;
  if (j.state == "running") out["pid"] = j.pid;
  if (!j.uri.empty()) out["uri"] = j.uri;
  if (j.state == "failed") {
    out["exit_code"] = exit_code(j.error);
    out["message"] = j.message;
    out["acknowledged"] = j.acknowledged;
  }
  return out;
}

std::string job_line(const async::Job& j) {
  std::string line = j.state + "  " + j.path + "  " + std::to_string(j.files) + " file" +
                     (j.files == 1 ? "" : "s") + ", " + format_bytes(j.bytes);
  if (j.step) line += "  step " + std::to_string(*j.step);
  if (!j.uri.empty()) line += "  " + j.uri;
  if (j.state == "failed") line += "  (exit " + std::to_string(exit_code(j.error)) + ": " + j.message + ")";
  return line;
}

}  // namespace

void add_wait_command(CLI::App& app, CliContext& ctx) {
  auto* cmd = app.add_subcommand(
      "wait", "Block until every background save to the destination has committed or failed");
  static std::string timeout;
  cmd->add_option("--timeout", timeout, "Give up after DURATION (e.g. 30s, 5m): exit 6");
  add_common_options(*cmd, ctx, true);
  cmd->callback([&ctx] {
    ctx.action = [&ctx] {
      std::optional<std::chrono::steady_clock::time_point> deadline;
      if (!timeout.empty()) {
        auto d = parse_duration(timeout);
        if (!d.ok()) return finish(d.status(), ctx);
        deadline = std::chrono::steady_clock::now() + *d;
      }
      auto st = async::wait_idle(ctx.dest, deadline);
      if (!st.ok()) {
        if (st.status().code() == Errc::kTimeout) return finish(Status(Errc::kPending, st.status().message()), ctx);
        return finish(st.status(), ctx);
      }
      auto failed = async::failures(ctx.dest, true);
      if (!failed.ok()) return finish(failed.status(), ctx);
      const async::Job* last = st->finished.empty() ? nullptr : &st->finished.back();
      if (ctx.json) {
        nlohmann::json doc = {{"destination", st->dest},
                              {"last", last ? job_json(*last) : nlohmann::json()},
                              {"failures", nlohmann::json::array()}};
        for (const auto& f : *failed) doc["failures"].push_back(job_json(f));
        print_json(doc);
      }
      // Earlier failures were overtaken by a later save; the outcome is the newest one's.
      for (const auto& f : *failed) {
        if (!last || f.id != last->id) spdlog::warn("an earlier background save failed: {}", f.message);
      }
      if (last && last->state == "failed") {
        return finish(Status(last->error, "background save of " + last->path + " failed: " + last->message), ctx);
      }
      if (last && last->state == "committed") spdlog::info("committed {}", last->uri);
      return 0;
    };
  });
}

void add_status_command(CLI::App& app, CliContext& ctx) {
  auto* cmd = app.add_subcommand(
      "status", "Show the pending, running and finished background saves to the destination");
  add_common_options(*cmd, ctx, true);
  cmd->callback([&ctx] {
    ctx.action = [&ctx] {
      auto st = async::state(ctx.dest);
      if (!st.ok()) return finish(st.status(), ctx);
      if (ctx.json) {
        nlohmann::json doc = {{"destination", st->dest},
                              {"queue", st->dir.string()},
                              {"queued", st->queued ? job_json(*st->queued) : nlohmann::json()},
                              {"running", st->running ? job_json(*st->running) : nlohmann::json()},
                              {"finished", nlohmann::json::array()}};
        for (const auto& j : st->finished) doc["finished"].push_back(job_json(j));
        print_json(doc);
        return 0;
      }
      std::cout << "destination: " << st->dest << "\n";
      std::cout << "running: " << (st->running ? job_line(*st->running) : "none") << "\n";
      std::cout << "queued: " << (st->queued ? job_line(*st->queued) : "none") << "\n";
      std::cout << "finished (newest last):" << (st->finished.empty() ? " none" : "") << "\n";
      for (const auto& j : st->finished) std::cout << "  " << job_line(j) << "\n";
      std::cout.flush();
      return 0;
    };
  });
}

void add_upload_command(CLI::App& app, CliContext& ctx) {
  auto* cmd = app.add_subcommand("__upload", "");  // started by `save --async`, not by people
  cmd->group("");
  static std::string dir;
  cmd->add_option("DIR", dir)->required();
  cmd->callback([&ctx] { ctx.action = [] { return async::run_uploader(dir); }; });
}

}  // namespace ckpt::cli
