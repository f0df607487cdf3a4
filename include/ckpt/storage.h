// The storage interface: one driver per scheme, all addressed by keys relative to a root
// location ("a/b.bin"). Drivers for remote schemes live in plugins loaded on first use, so
// local-only commands never load an HTTP stack.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ckpt/status.h"
#include "ckpt/uri.h"

namespace ckpt {

// Keys under this top-level folder are ckpt's bookkeeping (manifests, temporary files), never
// checkpoint content.
inline constexpr const char* kReservedDir = ".ckpt";

struct ObjectInfo {
  std::string key;  // relative to the storage root, '/'-separated
  uint64_t size = 0;
};

// Sequential bytes (stdin, a file, memory). read() returns 0 at end of stream.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual Result<size_t> read(void* buf, size_t len) = 0;
  // Total size when known in advance (lets drivers pick single vs multipart upload).
  virtual std::optional<uint64_t> size_hint() const { return std::nullopt; }

  // Zero-copy protocol: a source backed by a regular file exposes its descriptor, positioned
  // at the next byte to read. A driver that copies from it in the kernel (copy_file_range)
  // instead of calling read() must hand every copied byte to copied(), in order, so wrappers
  // (hashing, counting) still see all of them.
  virtual int fd() const { return -1; }
  virtual void copied(const void* data, size_t len) {}
};

class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual Status write(const void* buf, size_t len) = 0;

  // Zero-copy protocol, as for ByteSource: a sink backed by a regular file (not appending)
  // exposes its descriptor; a driver that writes to it directly, from its current position
  // (in the kernel, or by ranges in place, reading them back if it was opened O_RDWR), leaves
  // the position after the data and reports the bytes, in order, with copied().
  virtual int fd() const { return -1; }
  virtual void copied(const void* data, size_t len) {}
};

// Random access to one object (inspect reads a zip directory without the tensor bytes).
class RandomAccessFile {
 public:
  virtual ~RandomAccessFile() = default;
  virtual uint64_t size() const = 0;
  // Reads up to len bytes at offset; fewer only at end of object.
  virtual Result<size_t> read_at(uint64_t offset, void* buf, size_t len) = 0;
  // Non-null when the whole object is memory-mapped (local files): zero-copy access.
  virtual const uint8_t* data() const { return nullptr; }
  // Bytes fetched so far from the backing store (reported by inspect --verbose).
  virtual uint64_t bytes_fetched() const { return 0; }
};

// Called from any thread with the number of bytes just transferred.
using ProgressFn = std::function<void(uint64_t bytes)>;

struct StorageOptions {
  std::string endpoint;      // S3-compatible endpoint override
  std::string region;        // S3 region override
  unsigned parts_in_flight = 8;
  uint64_t part_size = 8ull << 20;
  bool durable = false;      // local: fsync each file, then the filesystem, before success
};

class Storage {
 public:
  virtual ~Storage() = default;

  // The root location, for messages.
  virtual const Location& location() const = 0;
  std::string uri_of(const std::string& key) const { return join_key(location().uri, key); }

  // Every object below the root, recursively, sorted by key. A missing root is an empty list.
  virtual Result<std::vector<ObjectInfo>> list() = 0;
  // Size of one object; nullopt when it does not exist.
  virtual Result<std::optional<ObjectInfo>> stat(const std::string& key) = 0;

  // Writes the source to key atomically: readers see the old object or the new one.
  virtual Status put(const std::string& key, ByteSource& src, const ProgressFn& progress) = 0;
  // Writes the whole object into a local file (created or truncated).
  virtual Status get_to_file(const std::string& key, const std::filesystem::path& dst,
                             const ProgressFn& progress) = 0;
  // Streams the whole object, in order, into sink.
  virtual Status get_to_sink(const std::string& key, ByteSink& sink,
                             const ProgressFn& progress) = 0;
  virtual Result<std::unique_ptr<RandomAccessFile>> open(const std::string& key) = 0;
  // Removing a missing object is not an error.
  virtual Status remove(const std::string& key) = 0;
  // Copies object from_key of `from` (this storage or another location of the same kind) to
  // key, atomically like put(), without the bytes passing through this process where the
  // backend allows it: within one local root a hard link (safe: ckpt never rewrites a stored
  // file in place), between local roots a kernel copy (a reflink where the filesystem can),
  // on S3 CopyObject / UploadPartCopy. kUnsupported when `from` is of another kind or another
  // endpoint: the caller then streams the object itself (copy_object does both). A missing
  // source is kNotFound.
  virtual Status copy_from(Storage& from, const std::string& from_key, const std::string& key) {
    return Status(Errc::kUnsupported, "no server-side copy from " + from.uri_of(from_key));
  }
  // Called at the end of a save: makes everything put so far durable when the options ask for
  // it (local: syncfs) and tidies temporary space. A no-op for object stores.
  virtual Status flush() { return {}; }
};

// Copies from_key of `from` to key of `to`: server-side where possible, else streamed
// through a temporary local file.
Status copy_object(Storage& from, const std::string& from_key, Storage& to, const std::string& key);

// A view of base restricted to the keys under prefix ("a/b/", ending in '/'): keys passed to
// it and returned by it are relative to the prefix. base must outlive it.
std::unique_ptr<Storage> sub_storage(Storage& base, const std::string& prefix);

// Opens the driver for a location ("file" built in; others loaded from plugins).
Result<std::unique_ptr<Storage>> open_storage(const Location& loc, const StorageOptions& opts);

// The local driver, directly (tests, and the restore target).
std::unique_ptr<Storage> make_local_storage(const Location& loc, const StorageOptions& opts);

// Plugin entry point: a shared object named "ckpt-<scheme>.so" exports
//   extern "C" ckpt::Storage* ckpt_open_storage(const ckpt::Location*,
//                                               const ckpt::StorageOptions*, ckpt::Status*);
// returning null with *status set on failure.
using OpenStorageFn = Storage* (*)(const Location*, const StorageOptions*, Status*);

// Finds and loads "ckpt-<name>.so" (beside the executable, in ../lib/ckpt, or in
// $CKPT_PLUGIN_DIR) and returns the named symbol.
Result<void*> load_plugin_symbol(const std::string& plugin, const char* symbol);

}  // namespace ckpt
