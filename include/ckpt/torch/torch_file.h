// A torch.save file opened for reading (records located, pickle parsed, storages checked
// against the tensors that use them) and a writer of torch.save files from a value tree.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ckpt/status.h"
#include "ckpt/storage.h"
#include "ckpt/torch/pickle.h"
#include "ckpt/torch/zip.h"

namespace ckpt::torch {

// Largest data.pkl we accept: pickles hold metadata only, tensor bytes live in records.
inline constexpr uint64_t kMaxPickleSize = 1ull << 30;

// True for the legacy (pre-1.6) torch.save format: a bare pickle starting with its magic.
bool is_legacy_torch_file(RandomAccessFile& file);

class TorchFile {
 public:
  // strict: refuse non-allow-listed globals (decode, encode); lenient: report them (inspect).
  static Result<std::unique_ptr<TorchFile>> open(RandomAccessFile& file, bool strict);

  const Document& doc() const { return *doc_; }
  Document& doc() { return *doc_; }
  const Value& root() const { return *doc_->root; }
  const ZipReader& zip() const { return zip_; }
  RandomAccessFile& file() const { return zip_.file(); }
  const std::string& prefix() const { return prefix_; }  // "archive/" or "<name>/"
  const std::string& version() const { return version_; }
  uint64_t pickle_size() const { return pickle_size_; }

  // The record holding a storage (data/<key>); null when absent.
  const ZipEntry* storage_entry(const std::string& key) const;

 private:
  ZipReader zip_;
  std::unique_ptr<Document> doc_;
  std::string prefix_;
  std::string version_;
  uint64_t pickle_size_ = 0;
  std::map<std::string, const ZipEntry*> storages_;
};

// One tensor with where its bytes are, for consumers that compute over them (inspect --stats):
// the storage's bytes start at storage_offset in the file (and at `data` when the file is
// mapped); element (i0, i1, ...) sits at element index offset + sum(ik * stride[k]).
struct TensorLocation {
  std::string name;  // dotted key path, e.g. "module_state_dict.fc1.weight"
  const TensorRef* tensor = nullptr;
  const ZipEntry* record = nullptr;
  uint64_t storage_offset = 0;  // file offset of the storage's first byte
  uint64_t storage_bytes = 0;
  const uint8_t* data = nullptr;  // storage's first byte when mapped, else null
};

// Visits every tensor reachable from the root in pickle order, with dotted names.
Status for_each_tensor(const TorchFile& file,
                       const std::function<Status(const TensorLocation&)>& fn,
                       bool resolve_offsets);

// Visits tensors under v (names prefixed with `prefix`), without file offsets.
Status walk_tensors(const Value& v, const std::string& prefix,
                    const std::function<Status(const std::string&, const TensorRef&)>& fn);

// Writes a torch.save file holding `root` to sink. Tensors' storages are copied (CRC-checked,
// streamed) from the files they came from (TensorRef::owner), renumbered "0", "1", ... in order
// of first use; tensors that shared a storage still do.
struct WriteOptions {
  std::string archive_name = "archive";  // the top folder inside the zip
};
Status write_torch_file(const Value& root, const std::vector<const TorchFile*>& sources,
                        ByteSink& sink, const WriteOptions& opts);

// Opens one object or file by URI or path, for reading (local files are memory-mapped).
struct OpenedFile {
  std::unique_ptr<Storage> storage;
  std::unique_ptr<RandomAccessFile> file;
};
Result<OpenedFile> open_location(const std::string& uri, const StorageOptions& opts = {});

// Writes a whole file to a location: a local path (temp file + rename, atomic) or any
// storage open_storage handles (written locally first, then Storage::put). "-" is stdout.
// Local files are fsynced before the rename only when opts.durable.
Status write_to_location(const std::string& uri, const std::function<Status(ByteSink&)>& produce,
                         const StorageOptions& opts = {});

}  // namespace ckpt::torch
