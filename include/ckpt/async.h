// Asynchronous saves. `save --async PATH` copies PATH into a staging directory (a reflink
// where the filesystem can, else a kernel copy) and returns; a detached uploader process then
// saves that snapshot to the destination with the usual guarantees and removes it.
//
// Each destination has one queue, a directory under the state directory ($CKPT_STATE_DIR,
// else $XDG_RUNTIME_DIR/ckpt, else /tmp/ckpt-<uid>) named after a hash of the destination:
//   lock            flock'ed briefly by whoever changes the queue
//   uploader.lock   flock'ed by the running uploader for its whole life
//   queued.json     the next job (a newer save replaces it, never the running one)
//   running.json    the job being uploaded
//   history.json    the last finished jobs, newest last
//   uploader.log    the uploader's stderr
// A job whose uploader died (running.json with uploader.lock free) is queued again, up to
// kMaxAttempts times, by the next ckpt command that looks at the queue.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "ckpt/checkpoint.h"
#include "ckpt/status.h"

namespace ckpt::async {

inline constexpr int kMaxAttempts = 3;

struct Job {
  std::string id;        // <20-digit ns time>-<pid>-<token>: sorts by creation
  std::string state;     // "queued", "running", "committed", "failed", "superseded"
  std::string path;      // what was snapshotted
  std::string snapshot;  // the staging copy
  std::string fingerprint;
  uint64_t files = 0, bytes = 0;
  bool reflinked = false;
  bool in_place = false;         // uploaded from path itself: no snapshot to remove
  int attempts = 0;
  int pid = 0;                   // of the uploader, while running
  std::optional<uint64_t> step;  // the step it committed as
  std::string uri;               // where it committed
  Errc error = Errc::kOk;        // of a failure (the CLI turns it into an exit code)
  std::string message;           // of a failure
  bool acknowledged = false;     // a failure already returned by `wait`
  int64_t created_ns = 0, finished_ns = 0;
};

struct QueueState {
  std::string dest;  // canonical destination URI
  std::filesystem::path dir;
  std::optional<Job> queued, running;
  std::vector<Job> finished;  // newest last
  bool idle() const { return !queued && !running; }
};

struct SaveOptions {
  CheckpointConfig config;        // destination, step, keep, storage knobs, manifest
  std::filesystem::path staging;  // empty: $CKPT_STAGING, else <PATH's parent>/.ckpt-staging
  int rounds = 5;                 // snapshot attempts while files keep changing under it
  // Non-empty: when PATH's fingerprint equals this, snapshot nothing and return a job with
  // state "skipped" (how `run` skips rounds in which nothing changed).
  std::string skip_if_fingerprint;
  // Queue PATH itself, without a snapshot: for when nothing writes it any more (`run`'s final
  // save once CMD has exited), which saves the copy.
  bool in_place = false;
};

// The canonical form of a destination (absolute for local paths), which names its queue.
Result<std::string> canonical_dest(const std::string& dest);

// Snapshots path, queues the job (replacing a queued one) and makes sure an uploader runs.
// Returns once the snapshot is complete. A staging filesystem without room for the snapshot
// fails at once (kNoSpace) and queues nothing.
Result<Job> save(const SaveOptions& options, const std::filesystem::path& path);

// The queue of a destination, after recovering a dead uploader's job and removing stale
// snapshots. A destination never used asynchronously has an empty state.
Result<QueueState> state(const std::string& dest);

// Waits until nothing is queued or running; kTimeout at the deadline, naming what is pending.
Result<QueueState> wait_idle(const std::string& dest,
                             std::optional<std::chrono::steady_clock::time_point> deadline);

// Failures not yet acknowledged, oldest first; acknowledge=true marks them (what `wait` does).
Result<std::vector<Job>> failures(const std::string& dest, bool acknowledge);

// A fingerprint of a file or directory tree: relative paths, sizes, modification times and
// inodes. Equal fingerprints mean nothing was written (as far as the filesystem tells).
Result<std::string> fingerprint(const std::filesystem::path& path);

// The uploader: drains the queue in `queue_dir`, then exits. The hidden command
// `ckpt __upload DIR` runs it in a detached process.
int run_uploader(const std::filesystem::path& queue_dir);

}  // namespace ckpt::async
