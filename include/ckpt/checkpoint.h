// The checkpoint engine: flytekit's SyncCheckpoint semantics (save, restore, read, write,
// exists) over any Storage, plus a manifest that makes torn or altered checkpoints visible.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ckpt/status.h"
#include "ckpt/storage.h"

namespace ckpt {

// flytekit's name for a stream or single-blob checkpoint.
inline constexpr const char* kStreamKey = "_dst_cp";

// Reports transfer progress; the default does nothing.
class Progress {
 public:
  virtual ~Progress() = default;
  virtual void start(uint64_t total_bytes, size_t files) {}
  virtual void advance(uint64_t bytes) {}
  virtual void finish() {}
};

// Which step a save writes or a read picks. Steps live under <dest>/.ckpt/steps/<N>/, each a
// checkpoint of its own; without steps a save uses flytekit's flat layout.
struct StepChoice {
  enum Kind { kNone, kNumber, kNext } kind = kNone;
  uint64_t number = 0;
  // "" = no steps; a decimal number; "next" = one more than the highest step there.
  static Result<StepChoice> parse(const std::string& text);
};

struct CheckpointConfig {
  std::string dest;  // raw values as given; Flyte's "not provided" spellings mean unset
  // Previous checkpoints, tried in order: the first that holds a complete checkpoint is used.
  std::vector<std::string> sources;
  StorageOptions storage;
  unsigned jobs = 0;            // files in flight; 0 = automatic
  bool write_manifest = true;   // false: exactly flytekit's layout, restores report "unverified"
  StepChoice step;              // saves: where to write; reads: which step (kNone = newest)
  unsigned keep = 0;            // after a step commits, keep this many complete steps (0: all)
  bool carry_forward = false;   // restore: copy what was restored to dest when it has none
  Progress* progress = nullptr;
};

// One file as recorded by a manifest.
struct ManifestEntry {
  uint64_t size = 0;
  std::string hash;  // kHashAlgorithm hex digest
};

// The state of one checkpoint (the flat layout or one step), from one listing plus its
// manifests.
struct CheckpointView {
  std::string uri;
  std::optional<uint64_t> step;  // set for a step
  bool has_manifest = false;
  // Content files (bookkeeping excluded) with what the newest manifest recorded, if any.
  struct File {
    std::string key;                        // relative to the checkpoint
    uint64_t size = 0;                      // as stored
    std::optional<ManifestEntry> expected;  // absent when unverified
    // Keys, relative to the storage root, that hold this file with the recorded size: its own
    // place first, then copies staged by a save that has not yet published them. Readers
    // take the first whose checksum matches.
    std::vector<std::string> stored;
  };
  std::vector<File> files;
  std::vector<std::string> missing;     // recorded but not stored
  std::vector<std::string> mismatched;  // stored size differs from the record
  std::vector<std::string> unrecorded;  // stored but in no manifest (an unfinished save)
  size_t manifests = 0;
  int64_t committed_ns = 0;  // time of the newest manifest (0 without one)
  bool committed = true;     // false: a step whose save has not written its manifest
  uint64_t total_bytes() const;
  bool complete() const { return committed && missing.empty() && mismatched.empty(); }
  // Nothing recorded (files of unfinished saves aside).
  bool empty() const { return files.empty() && missing.empty() && mismatched.empty(); }
};

// One row of `ckpt list`.
struct StepInfo {
  std::optional<uint64_t> step;  // none: the flat layout
  std::string state;             // "complete", "unverified", "incomplete", "deleted"
  size_t files = 0;
  uint64_t bytes = 0;
  int64_t committed_ns = 0;
  std::vector<std::string> problems;
};

struct PruneReport {
  std::vector<uint64_t> deleted;
  std::vector<uint64_t> kept;
};

struct SaveReport {
  std::string uri;
  std::optional<uint64_t> step;
  size_t files = 0;
  uint64_t bytes = 0;
  std::string manifest_key;  // empty when no manifest was written
};

struct RestoreReport {
  std::filesystem::path dir;
  std::string source;
  size_t files = 0;       // files in the checkpoint
  size_t downloaded = 0;  // files transferred
  size_t skipped = 0;     // already present and verified
  uint64_t bytes = 0;     // bytes transferred
  bool verified = false;  // every file checked against a manifest
  std::vector<std::string> unrecorded;
  std::optional<uint64_t> step;
  std::string carried_to;  // where --carry-forward copied it (empty: not copied)
};

struct ExistsReport {
  bool configured = false;  // what flytekit's prev_exists() answers
  std::string source;
  std::string state;        // "not-configured", "missing", "incomplete", "complete", "unverified"
  size_t files = 0;
  uint64_t bytes = 0;
  bool verified = false;
  std::vector<std::string> problems;
  std::optional<uint64_t> step;
  Status status;            // ok, kNotConfigured, kNoCheckpoint or kCorrupt
};

// The checkpoint a location holds: the newest complete step (or `step`), else the flat layout.
// An incomplete one is returned (not an error) so callers can report what is wrong.
Result<CheckpointView> load_view(Storage& storage, StepChoice step = {});

struct SaveInput;  // engine-internal

class Checkpointer {
 public:
  explicit Checkpointer(CheckpointConfig config);
  ~Checkpointer();

  // A file goes to <dest>/<name>, a directory's contents under <dest>/.
  Result<SaveReport> save_path(const std::filesystem::path& path);
  // A stream goes to <dest>/_dst_cp without being held in memory (also `write`).
  Result<SaveReport> save_stream(ByteSource& src);
  // Previous checkpoint into dir (an existing directory) or, without one, a fresh temp dir.
  Result<RestoreReport> restore(const std::optional<std::filesystem::path>& dir);
  // The single checkpoint file's bytes into sink, verified at the end.
  Status read(ByteSink& sink);
  // The single checkpoint file into a local file, atomically and verified before it appears.
  Status read_to_file(const std::filesystem::path& path);
  // Whether a complete previous checkpoint is there; verify_content hashes every file.
  ExistsReport exists(bool verify_content);
  // Every step of the destination (and its flat checkpoint, if any), oldest first.
  Result<std::vector<StepInfo>> list();
  // Deletes all but the newest `keep` complete steps of the destination (see prune_steps).
  Result<PruneReport> prune(unsigned keep);

 private:
  Result<Storage*> dest();
  // The first source holding a complete checkpoint, with that checkpoint's view. On failure,
  // rejected_ holds the view of the first source that was incomplete.
  Result<std::pair<Storage*, CheckpointView>> source();
  Result<SaveReport> save_inputs(std::vector<SaveInput>& inputs);
  Status carry_forward(Storage& from, const CheckpointView& view,
                       const std::filesystem::path& restored, RestoreReport& report);

  CheckpointConfig config_;
  std::unique_ptr<Storage> dest_;
  std::vector<std::unique_ptr<Storage>> sources_;
  std::optional<CheckpointView> rejected_;
};

// Retention: marks every complete step but the newest `keep` deleted, then deletes it, plus
// incomplete steps older than the oldest kept one (interrupted saves). Never the newest
// complete step, never a step newer than it (it may still be being written).
Result<PruneReport> prune_steps(Storage& storage, unsigned keep);

// Manifest encoding, exposed for tests and `inspect`.
std::string encode_manifest(const std::map<std::string, ManifestEntry>& files);
Result<std::map<std::string, ManifestEntry>> decode_manifest(const std::string& text,
                                                             const std::string& name);
inline constexpr const char* kManifestDir = ".ckpt/manifests/";
inline constexpr const char* kStepsDir = ".ckpt/steps/";
inline constexpr const char* kStagingDir = ".ckpt/staging/";
inline constexpr const char* kDeletedMarker = ".ckpt/deleted";

}  // namespace ckpt
