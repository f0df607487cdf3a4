// Random access to a local file: memory-mapped for zero-copy access (data()), read with pread
// (read_at), which on virtual machines is several times faster than through the mapping.
#pragma once
#include <filesystem>
#include <memory>

#include "ckpt/status.h"
#include "ckpt/storage.h"

namespace ckpt {

// kInvalidArgument when the path is not a regular file.
Result<std::unique_ptr<RandomAccessFile>> open_local_file(const std::filesystem::path& path);

}  // namespace ckpt
