#include <algorithm>

#include "ckpt/run.h"
#include "cli/common.h"

namespace ckpt::cli {

namespace {

// A CLI11 check: empty when TEXT is a duration, else why not (a usage error, exit 2).
std::string check_duration(const std::string& text) {
  auto d = ::ckpt::parse_duration(text);
  return d.ok() ? std::string() : d.status().message();
}

}  // namespace

void add_run_command(CLI::App& app, CliContext& ctx) {
  auto* cmd = app.add_subcommand(
      "run",
      "Run CMD as a preemption-proof job: restore the newest complete checkpoint into DIR, save "
      "DIR in the background while CMD runs, and once more when it ends or on SIGTERM");
  static RunOptions opts;
  static std::string dir, every, grace = "25s", kill_after, staging;
  static bool carry = true;
  static std::vector<std::string> command;
  cmd->add_option("--dir", dir, "The checkpoint directory: restored into, given to CMD as $CKPT_DIR, saved")
      ->required();
  cmd->add_option("--every", every, "Save DIR every DURATION while CMD runs (500ms, 25s, 10m, 1h; default: never)")
      ->envname("CKPT_EVERY")
      ->check(check_duration);
  cmd->add_option("--grace", grace,
                  "From SIGTERM/SIGINT to the final checkpoint committed (default 25s)")
      ->envname("CKPT_GRACE")
      ->check(check_duration);
  cmd->add_option("--kill-after", kill_after,
                  "CMD's share of the grace period: SIGKILL if it still runs after this (default 60% of --grace)")
      ->envname("CKPT_KILL_AFTER")
      ->check(check_duration);
  cmd->add_option("--staging", staging,
                  "Where snapshots are taken (default: $CKPT_STAGING, else beside DIR); the same "
                  "filesystem as DIR allows reflinks")
      ->envname("CKPT_STAGING");
  cmd->add_flag("--carry-forward,!--no-carry-forward", carry,
                "Copy a checkpoint restored from --prev-checkpoint to --dest at once (default on), "
                "so the next attempt finds it even if this one dies before its first save")
      ->envname("CKPT_CARRY_FORWARD");
  cmd->add_flag("--json", ctx.json, "Events as JSON objects, one per line, on stderr");
  cmd->add_option("CMD", command, "The command and its arguments, after --");
  add_common_options(*cmd, ctx, false);
  add_write_options(*cmd, ctx);
  cmd->footer(
      "Example: ckpt run --dir /scratch/ckpt --every 10m --dest \"$DEST\" --prev-checkpoint \"$PREV\" "
      "-- python train.py\n"
      "CMD gets CKPT_DIR, CKPT_RESTORED (1 or 0), CKPT_DEST, CKPT_STEP=next and CKPT_KEEP. Exit status: "
      "CMD's (128+N if signal N killed it; 127/126 if it cannot be run), 7 if the final checkpoint "
      "did not commit.");
  cmd->callback([cmd, &ctx] {
    // Without "--" the command's own options would be read as ours.
    auto rest = cmd->remaining();
    if (std::find(rest.begin(), rest.end(), "--") == rest.end()) {
      throw CLI::ValidationError("CMD", "put '--' between ckpt run's options and the command: "
                                        "ckpt run --dir DIR [options] -- CMD [ARGS...]");
    }
    if (command.empty()) throw CLI::ValidationError("CMD", "no command after '--'");
    ctx.action = [&ctx] {
      opts.dir = dir;
      opts.command = command;
      if (!every.empty()) opts.every = ::ckpt::parse_duration(every).value();  // checked when parsed
      opts.grace = ::ckpt::parse_duration(grace).value();
      if (!kill_after.empty()) opts.kill_after = ::ckpt::parse_duration(kill_after).value();
      opts.staging = staging;
      opts.carry_forward = carry;
      opts.json = ctx.json;
      CheckpointConfig config = make_config(ctx);
      config.progress = nullptr;  // a bar would cut into CMD's output
      auto code = run_supervised(opts, std::move(config));
      return code.ok() ? *code : finish(code.status(), ctx);
    };
  });
}

}  // namespace ckpt::cli
