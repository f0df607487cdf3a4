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

struct CheckpointConfig {
  std::string dest;  // raw values as given; Flyte's "not provided" spellings mean unset
  std::string src;
  StorageOptions storage;
  unsigned jobs = 0;            // files in flight; 0 = automatic
  bool write_manifest = true;   // false: exactly flytekit's layout, restores report "unverified"
  Progress* progress = nullptr;
};

// One file as recorded by a manifest.
struct ManifestEntry {
  uint64_t size = 0;
  std::string hash;  // kHashAlgorithm hex digest
};

// The state of a checkpoint location, from one listing plus its manifests.
struct CheckpointView {
  std::string uri;
  bool has_manifest = false;
  // Content files (bookkeeping excluded) with what the newest manifest recorded, if any.
  struct File {
    std::string key;
    uint64_t size = 0;                     // as stored
    std::optional<ManifestEntry> expected;  // absent when unverified
  };
  std::vector<File> files;
  std::vector<std::string> missing;     // recorded but not stored
  std::vector<std::string> mismatched;  // stored size differs from the record
  std::vector<std::string> unrecorded;  // stored but in no manifest (an unfinished save)
  size_t manifests = 0;
  uint64_t total_bytes() const;
  bool complete() const { return missing.empty() && mismatched.empty(); }
};

struct SaveReport {
  std::string uri;
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
};

struct ExistsReport {
  bool configured = false;  // what flytekit's prev_exists() answers
  std::string source;
  std::string state;        // "not-configured", "missing", "incomplete", "complete", "unverified"
  size_t files = 0;
  uint64_t bytes = 0;
  bool verified = false;
  std::vector<std::string> problems;
  Status status;            // ok, kNotConfigured, kNoCheckpoint or kCorrupt
};

// Reads a location's listing and manifests (no content bytes).
Result<CheckpointView> load_view(Storage& storage);

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

 private:
  Result<Storage*> dest();
  Result<Storage*> src();

  CheckpointConfig config_;
  std::unique_ptr<Storage> dest_, src_;
};

// Manifest encoding, exposed for tests and `inspect`.
std::string encode_manifest(const std::map<std::string, ManifestEntry>& files);
Result<std::map<std::string, ManifestEntry>> decode_manifest(const std::string& text,
                                                             const std::string& name);
inline constexpr const char* kManifestDir = ".ckpt/manifests/";

}  // namespace ckpt
