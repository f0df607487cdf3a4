// Point-in-time copies of a file or folder for asynchronous saves.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "ckpt/async.h"
#include "ckpt/storage.h"

namespace ckpt::async {

struct Snapshot {
  std::filesystem::path dir;
  std::string fingerprint;
  size_t files = 0;
  uint64_t bytes = 0;
  bool reflinked = false;
  bool skipped = false;  // the fingerprint matched skip_if_fingerprint: nothing copied
  double seconds = 0;
};

// Copies path (a file, or a folder's files) into dir, retrying up to `rounds` times while a
// file changes during its copy. staging_root is left out of the copy if it lies inside path.
Result<Snapshot> take_snapshot(const std::filesystem::path& path, const std::filesystem::path& dir,
                               const std::filesystem::path& staging_root, int rounds,
                               const std::string& skip_if_fingerprint);

// What take_snapshot would copy, without copying: files, bytes and fingerprint of path.
Result<Snapshot> scan(const std::filesystem::path& path);

// Copies a stream into dir/_dst_cp.
Result<Snapshot> take_stream_snapshot(ByteSource& src, const std::filesystem::path& dir);

}  // namespace ckpt::async
