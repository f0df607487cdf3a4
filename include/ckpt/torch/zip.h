// The zip container of torch.save files (torch >= 1.6): a reader that locates records from the
// central directory alone and a streaming writer of STORED, 64-byte aligned records.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ckpt/status.h"
#include "ckpt/storage.h"

namespace ckpt::torch {

struct ZipEntry {
  std::string name;
  uint64_t header_offset = 0;  // local header, relative to the file start
  uint64_t size = 0;           // uncompressed
  uint64_t compressed_size = 0;
  uint32_t crc = 0;
  uint16_t method = 0;  // 0 = stored (the only method torch.save uses)
};

class ZipReader {
 public:
  // Reads the end records and the central directory: one or two ranged reads for small
  // directories, never any record data.
  static Result<ZipReader> open(RandomAccessFile& file);

  const std::vector<ZipEntry>& entries() const { return entries_; }
  const ZipEntry* find(std::string_view name) const;
  RandomAccessFile& file() const { return *file_; }

  // Offset of the record's first data byte (reads the local header unless mapped).
  Result<uint64_t> data_offset(const ZipEntry& e) const;
  // Reads a whole record and checks its CRC; refuses records above max_size.
  Result<std::string> read(const ZipEntry& e, uint64_t max_size) const;
  // Streams a record in chunks to fn (pointer, length), checking the CRC at the end. The
  // chunks come from read_at into a reused buffer (also for mapped files), so memory stays
  // bounded.
  template <class Fn>
  Status stream(const ZipEntry& e, Fn&& fn) const;
  // Checks a record's CRC without keeping its bytes.
  Status verify(const ZipEntry& e) const;

 private:
  Status stream_impl(const ZipEntry& e, void* ctx,
                     Status (*cb)(void*, const uint8_t*, size_t)) const;

  RandomAccessFile* file_ = nullptr;
  std::vector<ZipEntry> entries_;
};

template <class Fn>
Status ZipReader::stream(const ZipEntry& e, Fn&& fn) const {
  return stream_impl(e, &fn, [](void* ctx, const uint8_t* p, size_t n) -> Status {
    return (*static_cast<std::remove_reference_t<Fn>*>(ctx))(p, n);
  });
}

// CRC-32 as zip uses it, incrementally (crc starts at 0).
uint32_t crc32_update(uint32_t crc, const void* data, size_t len);

// Writes records in order to a sink. Record data starts on 64-byte boundaries; sizes and CRCs
// follow each record in a data descriptor (as torch's own writer does), so data streams
// through in one pass. ZIP64 records are used where sizes or offsets need them.
class ZipWriter {
 public:
  explicit ZipWriter(ByteSink& sink) : sink_(sink) {}

  Status add(std::string_view name, std::string_view data);
  // A record of `size` bytes delivered by write() calls, then end(). With `known_crc` (bytes
  // copied from a record whose CRC the reader checks at its end) the CRC is not recomputed:
  // if the source fails its check the copy fails, so a finished archive is never wrong.
  Status begin(std::string_view name, uint64_t size, std::optional<uint32_t> known_crc = std::nullopt);
  Status write(const void* data, size_t len);
  Status end();
  // The central directory and end records. The sink holds a complete archive after this.
  Status finish();
  uint64_t bytes_written() const { return pos_; }

 private:
  Status put(const void* data, size_t len);

  ByteSink& sink_;
  uint64_t pos_ = 0;
  std::vector<ZipEntry> written_;
  bool open_ = false;
  uint64_t expected_ = 0;
  uint64_t got_ = 0;
  uint32_t crc_ = 0;
  std::optional<uint32_t> known_crc_;
};

}  // namespace ckpt::torch
