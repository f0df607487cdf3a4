// `ckpt run`: a preemption-proof entrypoint. It restores the newest complete checkpoint into a
// directory, runs a command on it, saves the directory in the background while the command
// runs (ckpt::async), saves it once more when the command ends or is told to stop, and waits
// for the uploads to commit inside the grace period. It forwards signals and reaps orphans,
// so it can be a container's PID 1 without tini.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ckpt/checkpoint.h"
#include "ckpt/status.h"

namespace ckpt {

// "500ms", "25s", "10m", "1h", or a plain number of seconds; decimals allowed ("1.5s").
// Anything else is kInvalidArgument with a message that names the text.
Result<std::chrono::milliseconds> parse_duration(std::string_view text);

// The job ran but its checkpoint is not safe: the final save failed, or the uploads did not
// commit within the grace period.
inline constexpr int kExitSaveFailed = 7;

struct RunOptions {
  std::filesystem::path dir;         // restored into, exported as CKPT_DIR, saved
  std::vector<std::string> command;  // CMD and its arguments
  std::optional<std::chrono::milliseconds> every;  // periodic saves; none without it
  std::chrono::milliseconds grace{25'000};         // from SIGTERM/SIGINT to "everything committed"
  std::optional<std::chrono::milliseconds> kill_after;  // CMD's share of grace; default 60%
  std::filesystem::path staging;     // snapshot directory (async::SaveOptions::staging)
  bool carry_forward = true;         // copy a checkpoint restored from elsewhere to the dest
  bool json = false;                 // events as JSON lines on stderr instead of text
};

// Runs the job. config carries the common flags: dest (required), sources (the previous
// attempts, tried after the destination itself), keep, storage knobs; its step and
// carry_forward are set here. Errors that stop the job before CMD starts (bad options, a
// restore that failed for another reason than "nothing there" or "corrupt") come back as a
// Status. Once CMD has been started the result is the job's exit status: CMD's code (128+N
// when signal N killed it), 126/127 when it could not be executed, kExitSaveFailed when the
// final checkpoint did not commit.
Result<int> run_supervised(const RunOptions& options, CheckpointConfig config);

}  // namespace ckpt
