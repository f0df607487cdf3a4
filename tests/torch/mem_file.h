// In-memory RandomAccessFile for tests: "mapped" exposes data() like a local file; otherwise
// only read_at works and every call is counted, like a remote object.
//
// A mapped MemFile is a real file mapping (a memfd, MAP_SHARED, read-only), as data()'s
// contract requires: readers may drop pages they have streamed (madvise MADV_DONTNEED), which
// for a file mapping only releases memory but would zero ordinary heap memory.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "ckpt/storage.h"

struct MemFile : ckpt::RandomAccessFile {
  MemFile(std::string d, bool mapped) : data_(std::move(d)), mapped_(mapped) {
    if (!mapped_ || data_.empty()) return;
    int fd = ::memfd_create("memfile", MFD_CLOEXEC);
    if (fd < 0) throw std::runtime_error("memfd_create failed");
    for (size_t done = 0; done < data_.size();) {
      ssize_t n = ::write(fd, data_.data() + done, data_.size() - done);
      if (n <= 0) {
        ::close(fd);
        throw std::runtime_error("memfd write failed");
      }
      done += static_cast<size_t>(n);
    }
    void* m = ::mmap(nullptr, data_.size(), PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    if (m == MAP_FAILED) throw std::runtime_error("mmap failed");
    map_ = static_cast<const uint8_t*>(m);
  }
  ~MemFile() override {
    if (map_) ::munmap(const_cast<uint8_t*>(map_), data_.size());
  }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;

  uint64_t size() const override { return data_.size(); }
  ckpt::Result<size_t> read_at(uint64_t off, void* buf, size_t len) override {
    ++reads;
    if (off >= data_.size()) return size_t{0};
    size_t n = std::min<uint64_t>(len, data_.size() - off);
    std::memcpy(buf, data_.data() + off, n);
    fetched += n;
    return n;
  }
  const uint8_t* data() const override {
    return mapped_ ? map_ : nullptr;  // like a local file, an empty one is not mapped
  }
  uint64_t bytes_fetched() const override { return fetched; }
  std::string data_;
  bool mapped_;
  const uint8_t* map_ = nullptr;
  int reads = 0;
  uint64_t fetched = 0;
};
