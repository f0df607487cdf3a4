#include "ckpt/hash.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace ckpt {

struct Hasher::State {
  XXH3_state_t s;
};

Hasher::Hasher() : state_(std::make_unique<State>()) { XXH3_128bits_reset(&state_->s); }
Hasher::~Hasher() = default;
Hasher::Hasher(Hasher&&) noexcept = default;
Hasher& Hasher::operator=(Hasher&&) noexcept = default;

void Hasher::update(const void* data, size_t len) { XXH3_128bits_update(&state_->s, data, len); }

std::string Hasher::hex_digest() const {
  XXH128_hash_t h = XXH3_128bits_digest(&state_->s);
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  return buf;
}

Result<std::string> hash_file(const std::filesystem::path& path, uint64_t* size) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno_status(errno, "cannot open", path.string());
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return errno_status(err, "cannot stat", path.string());
  }
  Hasher hasher;
  auto len = static_cast<size_t>(st.st_size);
  if (len > 0) {
    void* map = ::mmap(nullptr, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (map == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      return errno_status(err, "cannot map", path.string());
    }
    ::madvise(map, len, MADV_SEQUENTIAL);
    hasher.update(map, len);
    ::munmap(map, len);
  }
  ::close(fd);
  if (size) *size = static_cast<uint64_t>(st.st_size);
  return hasher.hex_digest();
}

}  // namespace ckpt
