// Content checksums recorded in manifests: XXH3-128, fast enough to hash at memory speed so
// verification costs little next to the copy itself.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>

#include "ckpt/status.h"

namespace ckpt {

inline constexpr const char* kHashAlgorithm = "xxh3-128";

class Hasher {
 public:
  Hasher();
  ~Hasher();
  Hasher(Hasher&&) noexcept;
  Hasher& operator=(Hasher&&) noexcept;

  void update(const void* data, size_t len);
  // 32 lowercase hex digits.
  std::string hex_digest() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Hashes a whole local file (memory-mapped, so it reads from the page cache without copies).
Result<std::string> hash_file(const std::filesystem::path& path, uint64_t* size = nullptr);

}  // namespace ckpt
