#include "ckpt/torch/zip.h"

#include <zlib.h>

#include <algorithm>
#include <future>
#include <cstring>
#include <memory>

namespace ckpt::torch {
namespace {

constexpr uint32_t kLocalSig = 0x04034b50;
constexpr uint32_t kCentralSig = 0x02014b50;
constexpr uint32_t kEndSig = 0x06054b50;
constexpr uint32_t kEnd64Sig = 0x06064b50;
constexpr uint32_t kEnd64LocatorSig = 0x07064b50;
constexpr uint32_t kDescriptorSig = 0x08074b50;
constexpr size_t kLocalHeaderSize = 30;
constexpr size_t kCentralHeaderSize = 46;
constexpr size_t kEndSize = 22;
constexpr size_t kEnd64Size = 56;
constexpr size_t kLocatorSize = 20;
constexpr uint64_t kAlignment = 64;
constexpr uint64_t kMaxCentralDirectory = 1ull << 30;  // sanity bound before allocating
constexpr size_t kChunk = 4u << 20;  // streaming buffer

uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t le32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
uint64_t le64(const uint8_t* p) { return le32(p) | (static_cast<uint64_t>(le32(p + 4)) << 32); }

void put16(std::string& s, uint16_t v) {
  s.push_back(static_cast<char>(v & 0xff));
  s.push_back(static_cast<char>(v >> 8));
}
void put32(std::string& s, uint32_t v) {
  put16(s, static_cast<uint16_t>(v & 0xffff));
  put16(s, static_cast<uint16_t>(v >> 16));
}
void put64(std::string& s, uint64_t v) {
  put32(s, static_cast<uint32_t>(v));
  put32(s, static_cast<uint32_t>(v >> 32));
}

Status corrupt(const std::string& msg) { return Status(Errc::kCorrupt, msg); }

// Exactly len bytes at offset, or a "truncated" error.
Status read_exact(RandomAccessFile& f, uint64_t offset, void* buf, size_t len) {
  if (offset > f.size() || len > f.size() - offset) {
    return corrupt("file is truncated (needs bytes up to offset " + std::to_string(offset + len) +
                   ", has " + std::to_string(f.size()) + ")");
  }
  // Through read_at also when the file is mapped: touching the mapping maps whole page-cache
  // folios into the process (resident memory that grows with the number of records read).
  size_t done = 0;
  while (done < len) {
    CKPT_ASSIGN_OR_RETURN(size_t n,
                          f.read_at(offset + done, static_cast<uint8_t*>(buf) + done, len - done));
    if (n == 0)
      return corrupt("file is truncated while reading at offset " + std::to_string(offset + done));
    done += n;
  }
  return {};
}

}  // namespace

uint32_t crc32_update(uint32_t crc, const void* data, size_t len) {
  return static_cast<uint32_t>(::crc32_z(crc, static_cast<const Bytef*>(data), len));
}

Result<ZipReader> ZipReader::open(RandomAccessFile& file) {
  const uint64_t size = file.size();
  if (size < kEndSize)
    return corrupt("not a zip archive: file is too short (" + std::to_string(size) + " bytes)");
  // The end record sits in the last 22 + 65535 bytes; one read covers it and, usually, the
  // whole central directory of a torch file.
  const uint64_t tail_len = std::min<uint64_t>(size, 256 * 1024);
  const uint64_t tail_off = size - tail_len;
  std::string tail(tail_len, '\0');
  CKPT_RETURN_IF_ERROR(read_exact(file, tail_off, tail.data(), tail_len));
  const auto* t = reinterpret_cast<const uint8_t*>(tail.data());
  int64_t end_pos = -1;
  const int64_t lowest = std::max<int64_t>(0, static_cast<int64_t>(tail_len) - (kEndSize + 65535));
  for (int64_t i = static_cast<int64_t>(tail_len) - kEndSize; i >= lowest; --i) {
    if (le32(t + i) == kEndSig && i + kEndSize + le16(t + i + 20) <= tail_len) {
      end_pos = i;
      break;
    }
  }
  if (end_pos < 0) {
    uint8_t head[4] = {};
    CKPT_RETURN_IF_ERROR(read_exact(file, 0, head, std::min<uint64_t>(4, size)));
    if (le32(head) == kLocalSig)
      return corrupt("zip archive is truncated: end of central directory not found");
    return corrupt("not a zip archive: end of central directory not found");
  }
  const uint8_t* e = t + end_pos;
  uint64_t count = le16(e + 10);
  uint64_t cd_size = le32(e + 12);
  uint64_t cd_offset = le32(e + 16);
  uint64_t end_abs = tail_off + static_cast<uint64_t>(end_pos);
  uint64_t cd_end_abs = end_abs;  // where the central directory should end
  if (end_abs >= kLocatorSize) {
    uint8_t loc[kLocatorSize];
    if (end_pos >= static_cast<int64_t>(kLocatorSize)) {
      std::memcpy(loc, e - kLocatorSize, kLocatorSize);
    } else {
      CKPT_RETURN_IF_ERROR(read_exact(file, end_abs - kLocatorSize, loc, kLocatorSize));
    }
    if (le32(loc) == kEnd64LocatorSig) {
      uint64_t e64_off = le64(loc + 8);
      uint8_t e64[kEnd64Size];
      if (e64_off > end_abs) return corrupt("ZIP64 end record offset is out of range");
      CKPT_RETURN_IF_ERROR(read_exact(file, e64_off, e64, kEnd64Size));
      if (le32(e64) != kEnd64Sig)
        return corrupt("ZIP64 end of central directory record is malformed");
      count = le64(e64 + 32);
      cd_size = le64(e64 + 40);
      cd_offset = le64(e64 + 48);
      cd_end_abs = e64_off;
    }
  }
  if (cd_size > cd_end_abs || cd_size > kMaxCentralDirectory)
    return corrupt("central directory size is out of range");
  // Bytes prepended to the archive shift every offset by the same amount.
  const uint64_t cd_abs = cd_end_abs - cd_size;
  if (cd_offset > cd_abs)
    return corrupt("central directory offset is out of range (file truncated?)");
  const uint64_t shift = cd_abs - cd_offset;
  if (count > cd_size / kCentralHeaderSize)
    return corrupt("central directory entry count is out of range");

  std::string cd;
  const uint8_t* c;
  if (cd_abs >= tail_off) {
    c = t + (cd_abs - tail_off);
  } else {
    cd.resize(cd_size);
    CKPT_RETURN_IF_ERROR(read_exact(file, cd_abs, cd.data(), cd_size));
    c = reinterpret_cast<const uint8_t*>(cd.data());
  }
  ZipReader r;
  r.file_ = &file;
  r.entries_.reserve(count);
  uint64_t p = 0;
  for (uint64_t i = 0; i < count; ++i) {
    if (p + kCentralHeaderSize > cd_size || le32(c + p) != kCentralSig) {
      return corrupt("central directory entry " + std::to_string(i) + " is malformed");
    }
    const uint8_t* h = c + p;
    ZipEntry z;
    z.method = le16(h + 10);
    z.crc = le32(h + 16);
    z.compressed_size = le32(h + 20);
    z.size = le32(h + 24);
    const uint16_t name_len = le16(h + 28), extra_len = le16(h + 30), comment_len = le16(h + 32);
    z.header_offset = le32(h + 42);
    if (p + kCentralHeaderSize + name_len + extra_len + comment_len > cd_size) {
      return corrupt("central directory entry " + std::to_string(i) + " runs past the directory");
    }
    z.name.assign(reinterpret_cast<const char*>(h + kCentralHeaderSize), name_len);
    // ZIP64 extra: only the fields saturated in the fixed header are present, in this order.
    const uint8_t* x = h + kCentralHeaderSize + name_len;
    for (uint32_t q = 0; q + 4 <= extra_len;) {
      uint16_t id = le16(x + q), len = le16(x + q + 2);
      if (q + 4u + len > extra_len) break;
      if (id == 0x0001) {
        const uint8_t* f = x + q + 4;
        uint32_t left = len;
        auto take = [&](uint64_t& v) {
          if (v != 0xffffffffu) return true;
          if (left < 8) return false;
          v = le64(f);
          f += 8;
          left -= 8;
          return true;
        };
        if (!take(z.size) || !take(z.compressed_size) || !take(z.header_offset)) {
          return corrupt("ZIP64 extra field of '" + z.name + "' is malformed");
        }
      }
      q += 4u + len;
    }
    if (z.header_offset > UINT64_MAX - shift) return corrupt("record offset out of range");
    z.header_offset += shift;
    if (z.header_offset >= cd_abs || z.compressed_size > cd_abs - z.header_offset) {
      return corrupt("record '" + z.name + "' lies outside the archive (file truncated?)");
    }
    r.entries_.push_back(std::move(z));
    p += kCentralHeaderSize + name_len + extra_len + comment_len;
  }
  return r;
}

const ZipEntry* ZipReader::find(std::string_view name) const {
  for (const auto& e : entries_) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

Result<uint64_t> ZipReader::data_offset(const ZipEntry& e) const {
  uint8_t h[kLocalHeaderSize];
  CKPT_RETURN_IF_ERROR(read_exact(*file_, e.header_offset, h, kLocalHeaderSize));
  if (le32(h) != kLocalSig) return corrupt("local header of '" + e.name + "' is malformed");
  uint64_t off = e.header_offset + kLocalHeaderSize + le16(h + 26) + le16(h + 28);
  if (off > file_->size() || e.compressed_size > file_->size() - off) {
    return corrupt("record '" + e.name + "' is truncated");
  }
  return off;
}

Status ZipReader::stream_impl(const ZipEntry& e, void* ctx,
                              Status (*cb)(void*, const uint8_t*, size_t)) const {
  if (e.method != 0) {
    return Status(Errc::kUnsupported, "record '" + e.name + "' is compressed (method " +
                                          std::to_string(e.method) +
                                          "); torch.save writes stored records only");
  }
  if (e.compressed_size != e.size) return corrupt("record '" + e.name + "' has inconsistent sizes");
  CKPT_ASSIGN_OR_RETURN(uint64_t off, data_offset(e));
  // Through buffers, also for mapped files: on virtual machines, reading a file mapping
  // (4 KiB pages, two-level page walks) measured several times slower than pread into a
  // buffer that stays cached, and buffers bound memory whatever the record's size. Two per
  // thread, reused across records: while the consumer (usually a write()) takes one chunk, a
  // second core reads the next one into the other buffer and extends the checksum over it.
  struct Buffers {
    std::unique_ptr<uint8_t[]> b[2];
    bool in_use = false;
  };
  thread_local Buffers shared;
  Buffers own;  // for a consumer that streams another record from its callback
  Buffers& bufs = shared.in_use ? own : shared;
  for (auto& b : bufs.b) {
    if (!b) b.reset(new uint8_t[kChunk]);
  }
  struct Hold {
    Buffers& b;
    explicit Hold(Buffers& x) : b(x) { b.in_use = true; }
    ~Hold() { b.in_use = false; }
  } hold(bufs);

  const RandomAccessFile& file = *file_;
  // Reads [at, at + n) of the record into dst and extends crc over it.
  auto fill = [&file, &e, off](uint8_t* dst, uint64_t at, size_t n, uint32_t* crc) -> Status {
    for (size_t got = 0; got < n;) {
      CKPT_ASSIGN_OR_RETURN(size_t k, const_cast<RandomAccessFile&>(file).read_at(
                                          off + at + got, dst + got, n - got));
      if (k == 0) {
        return corrupt("record '" + e.name + "' is truncated at offset " +
                       std::to_string(off + at + got));
      }
      got += k;
    }
    *crc = crc32_update(*crc, dst, n);
    return {};
  };
  uint32_t crc = 0;
  uint64_t done = 0;
  size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, e.size));
  int cur = 0;
  if (n > 0) CKPT_RETURN_IF_ERROR(fill(bufs.b[0].get(), 0, n, &crc));
  while (n > 0) {
    const uint64_t next_at = done + n;
    const size_t next_n = static_cast<size_t>(std::min<uint64_t>(kChunk, e.size - next_at));
    uint32_t next_crc = crc;
    std::future<Status> next;
    if (next_n > 0) {
      uint8_t* dst = bufs.b[1 - cur].get();
      next = std::async(std::launch::async, [&fill, &next_crc, dst, next_at, next_n] {
        return fill(dst, next_at, next_n, &next_crc);
      });
    }
    Status st = cb(ctx, bufs.b[cur].get(), n);
    Status read_st = next.valid() ? next.get() : Status();
    CKPT_RETURN_IF_ERROR(st);
    CKPT_RETURN_IF_ERROR(read_st);
    crc = next_crc;
    done = next_at;
    n = next_n;
    cur = 1 - cur;
  }
  if (crc != e.crc) return corrupt("record '" + e.name + "' fails its CRC check (data corrupted)");
  return {};
}

Result<std::string> ZipReader::read(const ZipEntry& e, uint64_t max_size) const {
  if (e.size > max_size) {
    return corrupt("record '" + e.name + "' is implausibly large (" + std::to_string(e.size) +
                   " bytes)");
  }
  if (e.compressed_size != e.size) return corrupt("record '" + e.name + "' has inconsistent sizes");
  if (e.method == 0 && e.size <= kChunk) {
    // The local header, its padding and the data in one read (one ranged GET when remote).
    const uint64_t want = std::min<uint64_t>(kLocalHeaderSize + e.name.size() + 128 + e.size,
                                             file_->size() - std::min(file_->size(), e.header_offset));
    std::string buf(want, '\0');
    CKPT_RETURN_IF_ERROR(read_exact(*file_, e.header_offset, buf.data(), buf.size()));
    const auto* h = reinterpret_cast<const uint8_t*>(buf.data());
    if (buf.size() >= kLocalHeaderSize && le32(h) == kLocalSig) {
      const uint64_t skip = kLocalHeaderSize + le16(h + 26) + le16(h + 28);
      if (skip + e.size <= buf.size()) {
        std::string out = buf.substr(skip, e.size);
        if (crc32_update(0, out.data(), out.size()) != e.crc) {
          return corrupt("record '" + e.name + "' fails its CRC check (data corrupted)");
        }
        return out;
      }
    }
  }
  std::string out;
  out.reserve(e.size);  // bounded by the file size: checked when the directory was read
  CKPT_RETURN_IF_ERROR(stream(e, [&](const uint8_t* p, size_t n) -> Status {
    out.append(reinterpret_cast<const char*>(p), n);
    return {};
  }));
  return out;
}

Status ZipReader::verify(const ZipEntry& e) const {
  return stream(e, [](const uint8_t*, size_t) -> Status { return {}; });
}

Status ZipWriter::put(const void* data, size_t len) {
  CKPT_RETURN_IF_ERROR(sink_.write(data, len));
  pos_ += len;
  return {};
}

Status ZipWriter::begin(std::string_view name, uint64_t size, std::optional<uint32_t> known_crc) {
  if (open_) return Status(Errc::kInternal, "zip writer: record still open");
  const bool zip64 = size >= 0xffffffffu;
  std::string h;
  put32(h, kLocalSig);
  put16(h, zip64 ? 45 : 20);
  put16(h, 0x0808);  // sizes in a data descriptor; UTF-8 names
  put16(h, 0);       // stored
  put16(h, 0);       // time
  put16(h, 0x21);    // 1980-01-01, as torch writes it
  put32(h, 0);       // crc, sizes: in the descriptor
  put32(h, zip64 ? 0xffffffffu : 0);
  put32(h, zip64 ? 0xffffffffu : 0);
  put16(h, static_cast<uint16_t>(name.size()));
  std::string extra;
  if (zip64) {
    put16(extra, 0x0001);
    put16(extra, 16);
    put64(extra, 0);
    put64(extra, 0);
  }
  uint64_t data_at = pos_ + kLocalHeaderSize + name.size() + extra.size() + 4;
  uint16_t pad = static_cast<uint16_t>((kAlignment - data_at % kAlignment) % kAlignment);
  put16(extra, 0x4246);  // "FB", torch's padding field
  put16(extra, pad);
  extra.append(pad, 'Z');
  put16(h, static_cast<uint16_t>(extra.size()));
  h.append(name);
  h.append(extra);
  ZipEntry e;
  e.name = std::string(name);
  e.header_offset = pos_;
  e.size = e.compressed_size = size;
  written_.push_back(std::move(e));
  CKPT_RETURN_IF_ERROR(put(h.data(), h.size()));
  open_ = true;
  expected_ = size;
  got_ = 0;
  crc_ = 0;
  known_crc_ = known_crc;
  return {};
}

Status ZipWriter::write(const void* data, size_t len) {
  if (!open_) return Status(Errc::kInternal, "zip writer: no open record");
  if (len > expected_ - got_)
    return Status(Errc::kInternal, "zip writer: record longer than declared");
  if (!known_crc_) crc_ = crc32_update(crc_, data, len);
  got_ += len;
  return put(data, len);
}

Status ZipWriter::end() {
  if (!open_) return Status(Errc::kInternal, "zip writer: no open record");
  if (got_ != expected_) return Status(Errc::kInternal, "zip writer: record shorter than declared");
  open_ = false;
  if (known_crc_) crc_ = *known_crc_;
  written_.back().crc = crc_;
  std::string d;
  put32(d, kDescriptorSig);
  put32(d, crc_);
  if (expected_ >= 0xffffffffu) {
    put64(d, expected_);
    put64(d, expected_);
  } else {
    put32(d, static_cast<uint32_t>(expected_));
    put32(d, static_cast<uint32_t>(expected_));
  }
  return put(d.data(), d.size());
}

Status ZipWriter::add(std::string_view name, std::string_view data) {
  CKPT_RETURN_IF_ERROR(begin(name, data.size()));
  CKPT_RETURN_IF_ERROR(write(data.data(), data.size()));
  return end();
}

Status ZipWriter::finish() {
  if (open_) return Status(Errc::kInternal, "zip writer: record still open at finish");
  const uint64_t cd_offset = pos_;
  std::string cd;
  for (const auto& e : written_) {
    const bool big_size = e.size >= 0xffffffffu, big_off = e.header_offset >= 0xffffffffu;
    std::string extra;
    if (big_size || big_off) {
      put16(extra, 0x0001);
      put16(extra, static_cast<uint16_t>((big_size ? 16 : 0) + (big_off ? 8 : 0)));
      if (big_size) {
        put64(extra, e.size);
        put64(extra, e.compressed_size);
      }
      if (big_off) put64(extra, e.header_offset);
    }
    put32(cd, kCentralSig);
    put16(cd, extra.empty() ? 20 : 45);  // made by
    put16(cd, extra.empty() ? 20 : 45);  // needed
    put16(cd, 0x0808);
    put16(cd, 0);
    put16(cd, 0);
    put16(cd, 0x21);
    put32(cd, e.crc);
    put32(cd, big_size ? 0xffffffffu : static_cast<uint32_t>(e.compressed_size));
    put32(cd, big_size ? 0xffffffffu : static_cast<uint32_t>(e.size));
    put16(cd, static_cast<uint16_t>(e.name.size()));
    put16(cd, static_cast<uint16_t>(extra.size()));
    put16(cd, 0);  // comment
    put16(cd, 0);  // disk
    put16(cd, 0);  // internal attributes
    put32(cd, 0);  // external attributes
    put32(cd, big_off ? 0xffffffffu : static_cast<uint32_t>(e.header_offset));
    cd.append(e.name);
    cd.append(extra);
  }
  const uint64_t cd_size = cd.size();
  const uint64_t count = written_.size();
  const bool zip64 = count >= 0xffff || cd_offset >= 0xffffffffu || cd_size >= 0xffffffffu;
  if (zip64) {
    const uint64_t e64_off = cd_offset + cd_size;
    put32(cd, kEnd64Sig);
    put64(cd, kEnd64Size - 12);
    put16(cd, 45);
    put16(cd, 45);
    put32(cd, 0);
    put32(cd, 0);
    put64(cd, count);
    put64(cd, count);
    put64(cd, cd_size);
    put64(cd, cd_offset);
    put32(cd, kEnd64LocatorSig);
    put32(cd, 0);
    put64(cd, e64_off);
    put32(cd, 1);
  }
  put32(cd, kEndSig);
  put16(cd, 0);
  put16(cd, 0);
  put16(cd, zip64 ? 0xffff : static_cast<uint16_t>(count));
  put16(cd, zip64 ? 0xffff : static_cast<uint16_t>(count));
  put32(cd, zip64 ? 0xffffffffu : static_cast<uint32_t>(cd_size));
  put32(cd, zip64 ? 0xffffffffu : static_cast<uint32_t>(cd_offset));
  put16(cd, 0);
  return put(cd.data(), cd.size());
}

}  // namespace ckpt::torch
