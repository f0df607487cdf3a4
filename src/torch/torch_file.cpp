#include "ckpt/torch/torch_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>

#include "ckpt/io.h"
#include "ckpt/local_file.h"
#include "ckpt/uri.h"

namespace fs = std::filesystem;

namespace ckpt::torch {
namespace {

constexpr size_t kMaxWalkDepth = 1000;  // the unpickler already bounds depth and size

// Legacy files begin with the pickled magic number 0x1950a86a20f9469cfc6c (LONG1, 10 bytes).
constexpr uint8_t kLegacyMagic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c,
                                    0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

Status check_extent(const TensorRef& t, const std::string& name, uint64_t record_size) {
  const size_t es = dtype_size(t.dtype);
  if (es == 0) return {};
  if (t.storage_numel > record_size / es) {
    return Status(Errc::kCorrupt, "storage data/" + t.storage_key + " of '" + name +
                                      "' is shorter (" + std::to_string(record_size) +
                                      " bytes) than its " + std::to_string(t.storage_numel) + " " +
                                      t.dtype + " elements");
  }
  if (t.offset < 0)
    return Status(Errc::kCorrupt, "tensor '" + name + "' has a negative storage offset");
  unsigned __int128 last = static_cast<uint64_t>(t.offset);
  for (size_t k = 0; k < t.shape.size(); ++k) {
    if (t.shape[k] < 0 || t.stride[k] < 0) {
      return Status(Errc::kCorrupt, "tensor '" + name + "' has a negative size or stride");
    }
    if (t.shape[k] == 0) return {};  // empty: touches nothing
    last += static_cast<unsigned __int128>(t.shape[k] - 1) * static_cast<uint64_t>(t.stride[k]);
    if (last > (static_cast<unsigned __int128>(1) << 100)) break;
  }
  if (last >= t.storage_numel) {
    return Status(
        Errc::kCorrupt,
        "tensor '" + name + "' reaches past the end of its storage data/" + t.storage_key);
  }
  return {};
}

Status walk(const Value& v, const std::string& name, size_t depth,
            const std::function<Status(const std::string&, const TensorRef&)>& fn) {
  if (depth > kMaxWalkDepth)
    return Status(Errc::kUnsupported,
                  "value nests too deeply (or contains itself) at '" + name + "'");
  auto child = [&](const std::string& k) { return name.empty() ? k : name + "." + k; };
  switch (v.kind) {
    case Kind::kTensor:
      return fn(name, *v.tensor);
    case Kind::kDict:
      for (size_t k = 0; k + 1 < v.items.size(); k += 2) {
        CKPT_RETURN_IF_ERROR(walk(*v.items[k + 1], child(key_repr(*v.items[k])), depth + 1, fn));
      }
      return {};
    case Kind::kList:
    case Kind::kTuple:
    case Kind::kSet:
      for (size_t k = 0; k < v.items.size(); ++k) {
        CKPT_RETURN_IF_ERROR(walk(*v.items[k], child(std::to_string(k)), depth + 1, fn));
      }
      return {};
    case Kind::kObject:
      for (size_t k = 0; k < v.items.size(); ++k) {
        CKPT_RETURN_IF_ERROR(walk(*v.items[k], child(std::to_string(k)), depth + 1, fn));
      }
      if (v.state) return walk(*v.state, child("__state__"), depth + 1, fn);
      return {};
    default:
      return {};
  }
}

// Splits a location into its parent (a storage root) and the last key component.
Result<std::pair<Location, std::string>> split_location(const std::string& uri) {
  CKPT_ASSIGN_OR_RETURN(Location loc, parse_location(uri));
  Location parent = loc;
  std::string key;
  if (loc.is_local()) {
    fs::path p(loc.path);
    key = p.filename().string();
    parent.path = p.has_parent_path() ? p.parent_path().string() : ".";
    parent.uri = parent.path;
  } else {
    auto slash = loc.path.rfind('/');
    key = slash == std::string::npos ? loc.path : loc.path.substr(slash + 1);
    parent.path = slash == std::string::npos ? "" : loc.path.substr(0, slash);
    parent.uri = loc.scheme + "://" + loc.bucket + (parent.path.empty() ? "" : "/" + parent.path);
  }
  if (key.empty() || key == "." || key == "..") {
    return Status(Errc::kInvalidArgument, "'" + uri + "' does not name a file");
  }
  return std::make_pair(parent, key);
}

}  // namespace

bool is_legacy_torch_file(RandomAccessFile& file) {
  uint8_t head[sizeof kLegacyMagic];
  if (file.size() < sizeof head) return false;
  auto n = file.read_at(0, head, sizeof head);
  return n.ok() && *n == sizeof head && std::memcmp(head, kLegacyMagic, sizeof head) == 0;
}

Result<std::unique_ptr<TorchFile>> TorchFile::open(RandomAccessFile& file, bool strict) {
  if (is_legacy_torch_file(file)) {
    return Status(Errc::kUnsupported,
                  "this is the legacy (pre-1.6) torch.save format, which ckpt does not read; "
                  "re-save it with torch >= 1.6 (torch.save(torch.load(f), f))");
  }
  auto tf = std::unique_ptr<TorchFile>(new TorchFile());
  CKPT_ASSIGN_OR_RETURN(tf->zip_, ZipReader::open(file));
  const ZipEntry* pkl = nullptr;
  for (const auto& e : tf->zip_.entries()) {
    auto slash = e.name.find('/');
    if (slash != std::string::npos && e.name.compare(slash, std::string::npos, "/data.pkl") == 0) {
      pkl = &e;
      tf->prefix_ = e.name.substr(0, slash + 1);
      break;
    }
  }
  if (!pkl) {
    for (const auto& e : tf->zip_.entries()) {
      if (e.name.find("/constants.pkl") != std::string::npos ||
          e.name.find("/code/") != std::string::npos) {
        return Status(Errc::kUnsupported,
                      "this is a TorchScript archive (torch.jit.save), not a torch.save file");
      }
    }
    return Status(Errc::kCorrupt,
                  "zip archive has no <prefix>/data.pkl record: not a torch.save file");
  }
  const std::string data_dir = tf->prefix_ + "data/";
  for (const auto& e : tf->zip_.entries()) {
    if (e.name.size() > data_dir.size() && e.name.compare(0, data_dir.size(), data_dir) == 0) {
      tf->storages_[e.name.substr(data_dir.size())] = &e;
    }
  }
  if (const ZipEntry* ver = tf->zip_.find(tf->prefix_ + "version")) {
    CKPT_ASSIGN_OR_RETURN(tf->version_, tf->zip_.read(*ver, 64));
    while (!tf->version_.empty() && (tf->version_.back() == '\n' || tf->version_.back() == '\r')) {
      tf->version_.pop_back();
    }
  }
  tf->pickle_size_ = pkl->size;
  CKPT_ASSIGN_OR_RETURN(std::string pickle_bytes, tf->zip_.read(*pkl, kMaxPickleSize));
  UnpickleOptions uo;
  uo.strict = strict;
  // Every value costs at least one opcode byte (plus a little for GETs): a tight bound.
  uo.max_values = pickle_bytes.size() * 2 + 16;
  auto doc = unpickle(pickle_bytes, uo);
  if (!doc.ok()) return doc.status().with_context(pkl->name);
  tf->doc_ = std::move(doc).value();
  TorchFile* self = tf.get();
  CKPT_RETURN_IF_ERROR(
      walk(*tf->doc_->root, "", 0, [&](const std::string& name, const TensorRef& t) -> Status {
        const ZipEntry* rec = self->storage_entry(t.storage_key);
        if (!rec) {
          return Status(Errc::kCorrupt, "tensor '" + name + "' uses storage data/" + t.storage_key +
                                            ", which is missing");
        }
        CKPT_RETURN_IF_ERROR(check_extent(t, name, rec->size));
        const_cast<TensorRef&>(t).owner = self;
        return {};
      }));
  return tf;
}

const ZipEntry* TorchFile::storage_entry(const std::string& key) const {
  auto it = storages_.find(key);
  return it == storages_.end() ? nullptr : it->second;
}

Status walk_tensors(const Value& v, const std::string& prefix,
                    const std::function<Status(const std::string&, const TensorRef&)>& fn) {
  return walk(v, prefix, 0, fn);
}

Status for_each_tensor(const TorchFile& file,
                       const std::function<Status(const TensorLocation&)>& fn,
                       bool resolve_offsets) {
  std::map<std::string, uint64_t> offsets;
  return walk(file.root(), "", 0, [&](const std::string& name, const TensorRef& t) -> Status {
    TensorLocation loc;
    loc.name = name;
    loc.tensor = &t;
    loc.record = file.storage_entry(t.storage_key);
    if (!loc.record) return Status(Errc::kCorrupt, "storage data/" + t.storage_key + " is missing");
    loc.storage_bytes = loc.record->size;
    if (resolve_offsets) {
      auto it = offsets.find(t.storage_key);
      if (it == offsets.end()) {
        CKPT_ASSIGN_OR_RETURN(uint64_t off, file.zip().data_offset(*loc.record));
        it = offsets.emplace(t.storage_key, off).first;
      }
      loc.storage_offset = it->second;
      if (const uint8_t* d = file.file().data()) loc.data = d + loc.storage_offset;
    }
    return fn(loc);
  });
}

Status write_torch_file(const Value& root, const std::vector<const TorchFile*>& sources,
                        ByteSink& sink, const WriteOptions& opts) {
  struct Planned {
    const TorchFile* from;
    std::string key;
  };
  std::map<std::pair<const void*, std::string>, std::string> renumber;
  std::vector<Planned> plan;  // indexed by new key number
  Status failure;
  PickleWriteOptions po;
  po.storage_key = [&](const TensorRef& t) -> std::string {
    auto id = std::make_pair(t.owner, t.storage_key);
    auto it = renumber.find(id);
    if (it != renumber.end()) return it->second;
    const TorchFile* from = nullptr;
    for (const TorchFile* s : sources) {
      if (s == t.owner) from = s;
    }
    if (!from && failure.ok()) failure = Status(Errc::kInternal, "tensor without a source file");
    std::string k = std::to_string(plan.size());
    plan.push_back({from, t.storage_key});
    renumber.emplace(id, k);
    return k;
  };
  CKPT_ASSIGN_OR_RETURN(std::string pkl, pickle(root, po));
  CKPT_RETURN_IF_ERROR(failure);
  const std::string prefix = opts.archive_name + "/";
  ZipWriter zw(sink);
  CKPT_RETURN_IF_ERROR(zw.add(prefix + "data.pkl", pkl));
  std::vector<std::string> keys;
  for (size_t k = 0; k < plan.size(); ++k) keys.push_back(std::to_string(k));
  std::sort(keys.begin(), keys.end());  // torch.save's record order
  for (const auto& k : keys) {
    const Planned& p = plan[std::stoul(k)];
    const ZipEntry* src = p.from->storage_entry(p.key);
    if (!src) return Status(Errc::kCorrupt, "storage data/" + p.key + " is missing");
    CKPT_RETURN_IF_ERROR(zw.begin(prefix + "data/" + k, src->size, src->crc));
    CKPT_RETURN_IF_ERROR(
        p.from->zip().stream(*src, [&](const uint8_t* d, size_t n) { return zw.write(d, n); }));
    CKPT_RETURN_IF_ERROR(zw.end());
  }
  CKPT_RETURN_IF_ERROR(zw.add(prefix + "version", "3\n"));
  return zw.finish();
}

Result<OpenedFile> open_location(const std::string& uri, const StorageOptions& opts) {
  CKPT_ASSIGN_OR_RETURN(auto parts, split_location(uri));
  OpenedFile out;
  if (parts.first.is_local()) {
    CKPT_ASSIGN_OR_RETURN(out.file, open_local_file(fs::path(parts.first.path) / parts.second));
    return out;
  }
  CKPT_ASSIGN_OR_RETURN(out.storage, open_storage(parts.first, opts));
  auto f = out.storage->open(parts.second);
  if (!f.ok()) return f.status();
  out.file = std::move(f).value();
  return out;
}

Status write_to_location(const std::string& uri, const std::function<Status(ByteSink&)>& produce,
                         const StorageOptions& opts) {
  if (uri == "-") {
    FdSink sink(STDOUT_FILENO, "stdout");
    return produce(sink);
  }
  CKPT_ASSIGN_OR_RETURN(auto parts, split_location(uri));
  const bool local = parts.first.is_local();
  fs::path tmp = local
                     ? fs::path(parts.first.path) / ("." + parts.second + ".tmp-" + random_token())
                     : fs::temp_directory_path() / ("ckpt-encode-" + random_token());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return errno_status(errno, "cannot create", tmp.string());
  FdSink sink(fd, tmp.string());
  Status st = produce(sink);
  if (st.ok() && local && opts.durable && ::fsync(fd) != 0) st = errno_status(errno, "cannot fsync", tmp.string());
  if (::close(fd) != 0 && st.ok()) st = errno_status(errno, "cannot close", tmp.string());
  if (st.ok()) {
    if (local) {
      fs::path dst = fs::path(parts.first.path) / parts.second;
      if (::rename(tmp.c_str(), dst.c_str()) != 0)
        st = errno_status(errno, "cannot rename to", dst.string());
    } else {
      auto storage = open_storage(parts.first, opts);
      if (!storage.ok()) {
        st = storage.status();
      } else {
        auto src = FdSource::open_file(tmp);
        st = src.ok() ? (*storage)->put(parts.second, **src, nullptr) : src.status();
      }
    }
  }
  std::error_code ec;
  if (!st.ok() || !local) fs::remove(tmp, ec);
  return st;
}

}  // namespace ckpt::torch
