// In-memory RandomAccessFile for tests: "mapped" exposes data() like a local file; otherwise
// only read_at works and every call is counted, like a remote object.
#pragma once

#include <algorithm>
#include <cstring>
#include <string>

#include "ckpt/storage.h"

struct MemFile : ckpt::RandomAccessFile {
  MemFile(std::string d, bool mapped) : data_(std::move(d)), mapped_(mapped) {}
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
    return mapped_ ? reinterpret_cast<const uint8_t*>(data_.data()) : nullptr;
  }
  uint64_t bytes_fetched() const override { return fetched; }
  std::string data_;
  bool mapped_;
  int reads = 0;
  uint64_t fetched = 0;
};
