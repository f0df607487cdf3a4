#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <set>
#include <unordered_map>

#include <spdlog/spdlog.h>

#include "ckpt/checkpoint.h"
#include "ckpt/hash.h"
#include "ckpt/io.h"
#include "transfer/pool.h"

namespace fs = std::filesystem;

namespace ckpt {
namespace {

bool is_bookkeeping(const std::string& key) {
  return key == kReservedDir || key.rfind(std::string(kReservedDir) + "/", 0) == 0;
}

std::string join_list(const std::vector<std::string>& keys, size_t max = 5) {
  std::string out;
  for (size_t i = 0; i < keys.size() && i < max; ++i) out += (i ? ", " : "") + keys[i];
  if (keys.size() > max) out += ", ... (" + std::to_string(keys.size()) + " in all)";
  return out;
}

std::string manifest_name() {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  char host[64] = "host";
  ::gethostname(host, sizeof host - 1);
  for (char* c = host; *c; ++c) {
    if (*c == '/' || *c == ' ') *c = '_';
  }
  char stamp[32];
  std::snprintf(stamp, sizeof stamp, "%020lld", static_cast<long long>(ns));
  return std::string(kManifestDir) + stamp + "-" + host + "-" + std::to_string(::getpid()) + "-" +
         random_token() + ".json";
}

Status incomplete_status(const CheckpointView& view) {
  std::string msg = "checkpoint at " + view.uri + " is incomplete or corrupt:";
  if (!view.missing.empty()) msg += " missing " + join_list(view.missing) + ";";
  if (!view.mismatched.empty()) msg += " wrong size " + join_list(view.mismatched) + ";";
  msg.pop_back();
  return Status(Errc::kCorrupt, msg);
}

Status checksum_mismatch(const std::string& uri, const std::string& expected,
                         const std::string& actual) {
  return Status(Errc::kCorrupt, "checkpoint file " + uri + " is corrupt: checksum " + actual +
                                    " does not match the manifest's " + expected);
}

// Creates root/rel one component at a time, refusing to pass through symlinks or files, so
// a restore can never be redirected outside root.
Status make_safe_dirs(const fs::path& root, const fs::path& rel, std::set<fs::path>& made,
                      std::vector<fs::path>& created) {
  fs::path cur = root;
  for (const auto& part : rel) {
    cur /= part;
    if (made.count(cur)) continue;
    struct stat st {};
    if (::lstat(cur.c_str(), &st) != 0) {
      if (errno != ENOENT) return errno_status(errno, "cannot stat", cur.string());
      if (::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST) {
        return errno_status(errno, "cannot create directory", cur.string());
      }
      created.push_back(cur);
      if (::lstat(cur.c_str(), &st) != 0) return errno_status(errno, "cannot stat", cur.string());
    }
    if (S_ISLNK(st.st_mode)) {
      return Status(Errc::kCorrupt, "refusing to restore through symbolic link '" + cur.string() + "'");
    }
    if (!S_ISDIR(st.st_mode)) {
      return Status(Errc::kIo, "cannot restore into '" + cur.string() + "': a file is in the way");
    }
    made.insert(cur);
  }
  return {};
}

// Refuses keys that could escape the target or that name both a file and a directory.
Status check_restorable(const CheckpointView& view) {
  std::set<std::string> keys;
  for (const auto& f : view.files) {
    CKPT_RETURN_IF_ERROR(check_relative_key(f.key));
    keys.insert(f.key);
  }
  for (const auto& f : view.files) {
    for (size_t pos = f.key.find('/'); pos != std::string::npos; pos = f.key.find('/', pos + 1)) {
      if (keys.count(f.key.substr(0, pos))) {
        return Status(Errc::kCorrupt, "refusing key '" + f.key + "': '" + f.key.substr(0, pos) +
                                          "' is both a file and a directory in " + view.uri);
      }
    }
  }
  return {};
}

class ProgressTracker {
 public:
  explicit ProgressTracker(Progress* p) : p_(p) {}
  ProgressFn fn() {
    if (!p_) return {};
    return [this](uint64_t n) {
      std::lock_guard<std::mutex> lock(mu_);
      p_->advance(n);
    };
  }

 private:
  Progress* p_;
  std::mutex mu_;
};

class NullSink : public ByteSink {
 public:
  Status write(const void*, size_t) override { return {}; }
};

// Files in flight unless configured: local copies are bound by cores and disks, object stores
// by round trips (512 small files went up 15% faster with 16 than with 4 even on loopback,
// and real S3 answers in tens of milliseconds).
unsigned jobs_for(unsigned configured, const Storage& storage) {
  if (configured) return configured;
  return storage.location().is_local() ? default_workers() : std::max(16u, default_workers());
}

}  // namespace

uint64_t CheckpointView::total_bytes() const {
  uint64_t n = 0;
  for (const auto& f : files) n += f.size;
  return n;
}

Result<CheckpointView> load_view(Storage& storage) {
  CheckpointView view;
  view.uri = storage.location().uri;
  CKPT_ASSIGN_OR_RETURN(auto objects, storage.list());
  std::unordered_map<std::string, uint64_t> content;
  std::vector<std::string> manifest_keys;
  std::vector<std::string> content_order;
  for (auto& o : objects) {
    if (is_bookkeeping(o.key)) {
      if (o.key.rfind(kManifestDir, 0) == 0 && o.key.size() > 5 &&
          o.key.compare(o.key.size() - 5, 5, ".json") == 0) {
        manifest_keys.push_back(o.key);
      }
      continue;
    }
    content.emplace(o.key, o.size);
    content_order.push_back(o.key);
  }
  std::sort(manifest_keys.begin(), manifest_keys.end());
  view.manifests = manifest_keys.size();
  view.has_manifest = !manifest_keys.empty();
  if (!view.has_manifest) {
    for (const auto& key : content_order) view.files.push_back({key, content[key], std::nullopt});
    return view;
  }
  std::map<std::string, ManifestEntry> recorded;
  for (const auto& mk : manifest_keys) {
    StringSink text;
    CKPT_RETURN_IF_ERROR(storage.get_to_sink(mk, text, {}));
    CKPT_ASSIGN_OR_RETURN(auto entries, decode_manifest(text.data(), storage.uri_of(mk)));
    for (auto& [k, e] : entries) recorded[k] = std::move(e);  // newer manifests win
  }
  for (const auto& [key, entry] : recorded) {
    auto it = content.find(key);
    if (it == content.end()) {
      view.missing.push_back(key);
    } else if (it->second != entry.size) {
      view.mismatched.push_back(key);
    } else {
      view.files.push_back({key, it->second, entry});
    }
  }
  for (const auto& key : content_order) {
    if (!recorded.count(key)) view.unrecorded.push_back(key);
  }
  return view;
}

Checkpointer::Checkpointer(CheckpointConfig config) : config_(std::move(config)) {}
Checkpointer::~Checkpointer() = default;

Result<Storage*> Checkpointer::dest() {
  if (!dest_) {
    if (is_unset_location(config_.dest)) {
      return Status(Errc::kInvalidArgument,
                    "no checkpoint destination: pass --checkpoint-path or set CKPT_DEST");
    }
    CKPT_ASSIGN_OR_RETURN(auto loc, parse_location(config_.dest));
    CKPT_ASSIGN_OR_RETURN(dest_, open_storage(loc, config_.storage));
  }
  return dest_.get();
}

Result<Storage*> Checkpointer::src() {
  if (!src_) {
    if (is_unset_location(config_.src)) {
      return Status(Errc::kNotConfigured,
                    "no previous checkpoint configured (--prev-checkpoint / CKPT_SRC is unset)");
    }
    CKPT_ASSIGN_OR_RETURN(auto loc, parse_location(config_.src));
    CKPT_ASSIGN_OR_RETURN(src_, open_storage(loc, config_.storage));
  }
  return src_.get();
}

Result<SaveReport> Checkpointer::save_path(const fs::path& path) {
  CKPT_ASSIGN_OR_RETURN(Storage * storage, dest());
  struct Item {
    fs::path path;
    std::string key;
    uint64_t size;
  };
  std::vector<Item> items;
  std::error_code ec;
  auto st = fs::status(path, ec);
  if (ec || !fs::exists(st)) {
    return Status(Errc::kInvalidArgument, "cannot save '" + path.string() + "': no such file or directory");
  }
  // Fail before writing anything when an input cannot be read, so a save never half-happens
  // for a reason known up front.
  auto add = [&](const fs::path& p, std::string key) -> Status {
    if (::access(p.c_str(), R_OK) != 0) return errno_status(errno, "cannot read", p.string());
    std::error_code fec;
    uint64_t size = fs::file_size(p, fec);
    if (fec) return errno_status(fec.value(), "cannot stat", p.string());
    items.push_back({p, std::move(key), size});
    return {};
  };
  if (fs::is_regular_file(st)) {
    CKPT_RETURN_IF_ERROR(add(path, path.filename().string()));
  } else if (fs::is_directory(st)) {
    fs::recursive_directory_iterator it(path, fs::directory_options::none, ec), end;
    if (ec) return errno_status(ec.value(), "cannot list", path.string());
    for (; it != end; it.increment(ec)) {
      if (ec) return errno_status(ec.value(), "cannot list", path.string());
      auto key = it->path().lexically_relative(path).generic_string();
      std::error_code fec;
      if (is_bookkeeping(key)) {
        if (it->is_directory(fec)) it.disable_recursion_pending();
        spdlog::warn("skipping '{}': the name .ckpt is reserved for ckpt's bookkeeping",
                     it->path().string());
        continue;
      }
      if (it->is_regular_file(fec)) {
        CKPT_RETURN_IF_ERROR(add(it->path(), key));
      } else if (it->is_symlink(fec) && it->is_directory(fec)) {
        spdlog::warn("skipping symbolic link to a directory '{}'", it->path().string());
      } else if (!it->is_directory(fec)) {
        spdlog::warn("skipping '{}': not a regular file", it->path().string());
      }
    }
  } else {
    return Status(Errc::kInvalidArgument,
                  "cannot save '" + path.string() + "': not a regular file or directory");
  }
  if (items.empty()) {
    return Status(Errc::kInvalidArgument, "nothing to save: '" + path.string() + "' has no files");
  }
  uint64_t total = 0;
  for (const auto& i : items) total += i.size;
  if (config_.progress) config_.progress->start(total, items.size());
  ProgressTracker tracker(config_.progress);
  auto progress = tracker.fn();
  std::vector<ManifestEntry> entries(items.size());
  const unsigned jobs = jobs_for(config_.jobs, *storage);
  Status run = run_parallel(items.size(), jobs, [&](size_t i) -> Status {
    CKPT_ASSIGN_OR_RETURN(auto file, FdSource::open_file(items[i].path));
    HashingSource hashing(*file);
    CKPT_RETURN_IF_ERROR(storage->put(items[i].key, hashing, progress)
                             .with_context("saving " + items[i].path.string()));
    entries[i] = {hashing.bytes(), hashing.hex_digest()};
    spdlog::debug("saved {} ({} bytes) -> {}", items[i].path.string(), hashing.bytes(),
                  storage->uri_of(items[i].key));
    return {};
  });
  if (config_.progress) config_.progress->finish();
  CKPT_RETURN_IF_ERROR(run);
  std::map<std::string, ManifestEntry> record;
  SaveReport report{storage->location().uri, items.size(), 0, {}};
  for (size_t i = 0; i < items.size(); ++i) {
    report.bytes += entries[i].size;
    record[items[i].key] = entries[i];
  }
  CKPT_RETURN_IF_ERROR(storage->flush());
  if (config_.write_manifest) {
    report.manifest_key = manifest_name();
    StringSource text(encode_manifest(record));
    CKPT_RETURN_IF_ERROR(storage->put(report.manifest_key, text, {}));
    CKPT_RETURN_IF_ERROR(storage->flush());
  }
  return report;
}

Result<SaveReport> Checkpointer::save_stream(ByteSource& src) {
  CKPT_ASSIGN_OR_RETURN(Storage * storage, dest());
  if (config_.progress) config_.progress->start(src.size_hint().value_or(0), 1);
  ProgressTracker tracker(config_.progress);
  HashingSource hashing(src);
  Status st = storage->put(kStreamKey, hashing, tracker.fn());
  if (config_.progress) config_.progress->finish();
  CKPT_RETURN_IF_ERROR(st);
  SaveReport report{storage->location().uri, 1, hashing.bytes(), {}};
  CKPT_RETURN_IF_ERROR(storage->flush());
  if (config_.write_manifest) {
    report.manifest_key = manifest_name();
    StringSource text(encode_manifest({{kStreamKey, {hashing.bytes(), hashing.hex_digest()}}}));
    CKPT_RETURN_IF_ERROR(storage->put(report.manifest_key, text, {}));
    CKPT_RETURN_IF_ERROR(storage->flush());
  }
  return report;
}

Result<RestoreReport> Checkpointer::restore(const std::optional<fs::path>& dir) {
  CKPT_ASSIGN_OR_RETURN(Storage * storage, src());
  RestoreReport report;
  report.source = storage->location().uri;
  if (dir) {
    std::error_code ec;
    if (!fs::is_directory(*dir, ec)) {
      return Status(Errc::kInvalidArgument, "Checkpoints can be restored to a directory only: '" +
                                                dir->string() + "' is not an existing directory");
    }
    report.dir = *dir;
  }
  CKPT_ASSIGN_OR_RETURN(auto view, load_view(*storage));
  if (view.files.empty() && view.complete()) {
    return Status(Errc::kNoCheckpoint, "no checkpoint at " + view.uri);
  }
  if (!view.complete()) return incomplete_status(view);
  CKPT_RETURN_IF_ERROR(check_restorable(view));
  for (const auto& key : view.unrecorded) {
    spdlog::warn("ignoring {}: not recorded by any manifest (left by an unfinished save?)",
                 storage->uri_of(key));
  }
  if (!dir) {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/ckpt-restore-XXXXXX";
    if (!::mkdtemp(templ.data())) return errno_status(errno, "cannot create temporary directory", templ);
    report.dir = fs::path(templ) / "prev_cp";
    if (::mkdir(report.dir.c_str(), 0755) != 0) {
      return errno_status(errno, "cannot create directory", report.dir.string());
    }
  }
  report.files = view.files.size();
  report.verified = view.has_manifest;
  report.unrecorded = view.unrecorded;

  struct Task {
    const CheckpointView::File* file;
    fs::path target, tmp;
  };
  std::vector<Task> tasks;
  std::set<fs::path> made;
  std::vector<fs::path> created;  // removed again if the restore fails
  auto undo_dirs = [&] {
    for (auto it = created.rbegin(); it != created.rend(); ++it) ::rmdir(it->c_str());
  };
  uint64_t total = 0;
  for (const auto& f : view.files) {
    fs::path target = report.dir / f.key;
    Status dirs = make_safe_dirs(report.dir, fs::path(f.key).parent_path(), made, created);
    if (!dirs.ok()) {
      undo_dirs();
      return dirs;
    }
    if (f.expected) {
      struct stat st {};
      if (::lstat(target.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
          static_cast<uint64_t>(st.st_size) == f.size) {
        auto have = hash_file(target);
        if (have.ok() && *have == f.expected->hash) {
          ++report.skipped;
          continue;
        }
      }
    }
    fs::path tmp = target.parent_path() / ("." + target.filename().string() + ".ckpt-part-" + random_token());
    tasks.push_back({&f, target, tmp});
    total += f.size;
  }
  if (config_.progress) config_.progress->start(total, tasks.size());
  ProgressTracker tracker(config_.progress);
  auto progress = tracker.fn();
  // Phase 1: everything lands under temporary names and is verified; phase 2 renames. A
  // corrupt file therefore leaves the target as it was.
  const unsigned jobs = jobs_for(config_.jobs, *storage);
  Status run = run_parallel(tasks.size(), jobs, [&](size_t i) -> Status {
    const auto& t = tasks[i];
    // One pass: bytes are hashed on their way to disk, in order.
    int fd = ::open(t.tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return errno_status(errno, "cannot create", t.tmp.string());
    FdSink out(fd, t.target.string());
    HashingSink hashing(out);
    Status got = storage->get_to_sink(t.file->key, hashing, progress);
    if (::close(fd) != 0 && got.ok()) got = errno_status(errno, "cannot write", t.target.string());
    CKPT_RETURN_IF_ERROR(got);
    uint64_t size = hashing.bytes();
    std::string hash = hashing.hex_digest();
    if (size != t.file->size) {
      return Status(Errc::kCorrupt, "checkpoint file " + storage->uri_of(t.file->key) +
                                        " changed size while restoring");
    }
    if (t.file->expected && hash != t.file->expected->hash) {
      return checksum_mismatch(storage->uri_of(t.file->key), t.file->expected->hash, hash);
    }
    return {};
  });
  if (config_.progress) config_.progress->finish();
  if (run.ok()) {
    for (const auto& t : tasks) {
      if (::rename(t.tmp.c_str(), t.target.c_str()) != 0) {
        run = errno == EISDIR ? Status(Errc::kIo, "cannot restore '" + t.target.string() +
                                                      "': a directory is in the way")
                              : errno_status(errno, "cannot rename into", t.target.string());
        break;
      }
      report.bytes += t.file->size;
      ++report.downloaded;
    }
  }
  if (!run.ok()) {
    for (const auto& t : tasks) ::unlink(t.tmp.c_str());
    undo_dirs();
    return run;
  }
  return report;
}

Status Checkpointer::read(ByteSink& sink) {
  CKPT_ASSIGN_OR_RETURN(Storage * storage, src());
  CKPT_ASSIGN_OR_RETURN(auto view, load_view(*storage));
  if (!view.complete()) return incomplete_status(view);
  if (view.files.empty()) return Status(Errc::kNoCheckpoint, "no checkpoint at " + view.uri);
  if (view.files.size() > 1) {
    return Status(Errc::kFailedPrecondition,
                  "Expected exactly one checkpoint - found " + std::to_string(view.files.size()));
  }
  const auto& f = view.files.front();
  HashingSink hashing(sink);
  CKPT_RETURN_IF_ERROR(storage->get_to_sink(f.key, hashing, {}));
  if (hashing.bytes() != f.size) {
    return Status(Errc::kCorrupt, "checkpoint file " + storage->uri_of(f.key) + " changed size while reading");
  }
  if (f.expected && hashing.hex_digest() != f.expected->hash) {
    return checksum_mismatch(storage->uri_of(f.key), f.expected->hash, hashing.hex_digest());
  }
  return {};
}

Status Checkpointer::read_to_file(const fs::path& path) {
  fs::path tmp = path.parent_path() / ("." + path.filename().string() + ".ckpt-part-" + random_token());
  int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return errno_status(errno, "cannot create", tmp.string());
  FdSink sink(fd, path.string());
  Status st = read(sink);
  if (::close(fd) != 0 && st.ok()) st = errno_status(errno, "cannot write", path.string());
  if (st.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    st = errno_status(errno, "cannot rename into", path.string());
  }
  if (!st.ok()) ::unlink(tmp.c_str());
  return st;
}

ExistsReport Checkpointer::exists(bool verify_content) {
  ExistsReport r;
  r.configured = !is_unset_location(config_.src);
  auto storage = src();
  if (!storage.ok()) {
    r.state = r.configured ? "error" : "not-configured";
    r.status = storage.status();
    return r;
  }
  r.source = (*storage)->location().uri;
  auto view = load_view(**storage);
  if (!view.ok()) {
    r.state = view.status().code() == Errc::kCorrupt ? "incomplete" : "error";
    r.status = view.status();
    return r;
  }
  r.files = view->files.size();
  r.bytes = view->total_bytes();
  for (const auto& k : view->missing) r.problems.push_back("missing: " + k);
  for (const auto& k : view->mismatched) r.problems.push_back("wrong size: " + k);
  if (!view->complete()) {
    r.state = "incomplete";
    r.status = incomplete_status(*view);
    return r;
  }
  if (view->files.empty()) {
    r.state = "missing";
    r.status = Status(Errc::kNoCheckpoint, "no checkpoint at " + view->uri);
    return r;
  }
  if (!view->has_manifest) {
    r.state = "unverified";
    return r;
  }
  if (verify_content) {
    std::mutex mu;
    const unsigned jobs = jobs_for(config_.jobs, **storage);
    Status run = run_parallel(view->files.size(), jobs, [&](size_t i) -> Status {
      const auto& f = view->files[i];
      NullSink null;
      HashingSink hashing(null);
      CKPT_RETURN_IF_ERROR((*storage)->get_to_sink(f.key, hashing, {}));
      if (hashing.hex_digest() != f.expected->hash || hashing.bytes() != f.size) {
        std::lock_guard<std::mutex> lock(mu);
        r.problems.push_back("checksum mismatch: " + f.key);
        return checksum_mismatch((*storage)->uri_of(f.key), f.expected->hash, hashing.hex_digest());
      }
      return {};
    });
    if (!run.ok()) {
      r.state = run.code() == Errc::kCorrupt ? "incomplete" : "error";
      r.status = run;
      return r;
    }
  }
  r.verified = verify_content;
  r.state = "complete";
  return r;
}

}  // namespace ckpt
