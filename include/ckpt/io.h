// Sources and sinks over file descriptors and memory, and a hashing wrapper.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "ckpt/hash.h"
#include "ckpt/storage.h"

namespace ckpt {

inline constexpr size_t kCopyBufferSize = 256u << 10;  // fits in L2: hashing stays cache-hot

// Reads from a descriptor; owns it when `owned`. Retries EINTR.
class FdSource : public ByteSource {
 public:
  FdSource(int fd, bool owned, std::string name, std::optional<uint64_t> size = std::nullopt)
      : fd_(fd), owned_(owned), name_(std::move(name)), size_(size) {}
  ~FdSource() override;
  static Result<std::unique_ptr<FdSource>> open_file(const std::filesystem::path& path);
  Result<size_t> read(void* buf, size_t len) override;
  std::optional<uint64_t> size_hint() const override { return size_; }
  int fd() const override { return size_ ? fd_ : -1; }  // regular files only, not pipes

 private:
  int fd_;
  bool owned_;
  std::string name_;
  std::optional<uint64_t> size_;
};

class StringSource : public ByteSource {
 public:
  explicit StringSource(std::string data) : data_(std::move(data)) {}
  Result<size_t> read(void* buf, size_t len) override;
  std::optional<uint64_t> size_hint() const override { return data_.size(); }

 private:
  std::string data_;
  size_t pos_ = 0;
};

// Hashes and counts every byte read through it.
class HashingSource : public ByteSource {
 public:
  explicit HashingSource(ByteSource& inner) : inner_(inner) {}
  Result<size_t> read(void* buf, size_t len) override;
  std::optional<uint64_t> size_hint() const override { return inner_.size_hint(); }
  int fd() const override { return inner_.fd(); }
  void copied(const void* data, size_t len) override;
  uint64_t bytes() const { return bytes_; }
  std::string hex_digest() const { return hasher_.hex_digest(); }

 private:
  ByteSource& inner_;
  Hasher hasher_;
  uint64_t bytes_ = 0;
};

class FdSink : public ByteSink {
 public:
  FdSink(int fd, std::string name);
  Status write(const void* buf, size_t len) override;
  int fd() const override { return regular_ ? fd_ : -1; }

 private:
  int fd_;
  bool regular_;
  std::string name_;
};

class StringSink : public ByteSink {
 public:
  Status write(const void* buf, size_t len) override {
    data_.append(static_cast<const char*>(buf), len);
    return {};
  }
  std::string& data() { return data_; }

 private:
  std::string data_;
};

class HashingSink : public ByteSink {
 public:
  explicit HashingSink(ByteSink& inner) : inner_(inner) {}
  Status write(const void* buf, size_t len) override;
  int fd() const override { return inner_.fd(); }
  void copied(const void* data, size_t len) override;
  uint64_t bytes() const { return bytes_; }
  std::string hex_digest() const { return hasher_.hex_digest(); }

 private:
  ByteSink& inner_;
  Hasher hasher_;
  uint64_t bytes_ = 0;
};

// Writes all of buf to fd, retrying short writes and EINTR.
Status write_all(int fd, const void* buf, size_t len, std::string_view name);

// Hands bytes [offset, offset + len) of fd to fn in order, read with pread (retrying EINTR)
// through buf, buf_len bytes at a time. A file that ends early is an error naming it.
Status read_range(int fd, uint64_t offset, uint64_t len, char* buf, size_t buf_len,
                  std::string_view name, const std::function<void(const void*, size_t)>& fn);

// Copies the regular file `from` into the new file `to` (created exclusively, mode 0644): a
// reflink (FICLONE) where the filesystem can share extents (XFS, btrfs), else a kernel copy
// (copy_file_range). Returns whether it was a reflink. On failure `to` is removed.
Result<bool> copy_local_file(const std::filesystem::path& from, const std::filesystem::path& to);

// Replaces a local file with `data` atomically: written to a temporary name beside it, then
// renamed over it.
Status write_file_atomic(const std::filesystem::path& path, std::string_view data);

// "512 B", "1.5 MiB": sizes for people.
std::string format_bytes(uint64_t bytes);

// A random 16-hex-digit token for temporary names.
std::string random_token();

}  // namespace ckpt
