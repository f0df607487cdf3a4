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
#include "checkpoint/layout.h"
#include "transfer/pool.h"

namespace fs = std::filesystem;

namespace ckpt {
namespace {

std::string join_list(const std::vector<std::string>& items, size_t max) {
  std::string out;
  for (size_t i = 0; i < items.size() && i < max; ++i) out += (i ? "; " : "") + items[i];
  if (items.size() > max) out += "; ... (" + std::to_string(items.size()) + " in all)";
  return out;
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


// Staged copies left by saves that died (another host's: after a day) and that no record
// needs any more; a live save's are never touched.
void remove_dead_staging(Storage& storage, const std::vector<ObjectInfo>& before,
                         const std::string& prefix) {
  const std::string staging = prefix + kStagingDir;
  std::set<std::string> dead;
  for (const auto& o : before) {
    if (o.key.compare(0, staging.size(), staging) != 0) continue;
    std::string id = o.key.substr(staging.size(), o.key.find('/', staging.size()) - staging.size());
    if (!layout::id_may_be_live(id)) dead.insert(o.key);
  }
  if (dead.empty()) return;
  auto objects = storage.list();
  if (!objects.ok()) return;
  auto view = layout::build_view(storage, *objects, prefix, std::nullopt);
  if (!view.ok()) return;
  for (const auto& f : view->files) {
    for (const auto& k : f.stored) dead.erase(k);
  }
  for (const auto& k : dead) {
    if (storage.remove(k).ok()) spdlog::debug("removed {} (left by an interrupted save)", storage.uri_of(k));
  }
}

// Streams one checkpoint file into sink and checks it against the record, trying each place
// that holds it (its own, then staged copies) until one matches. reset() rewinds the sink.
Status fetch_verified(Storage& storage, const CheckpointView::File& f, ByteSink& sink,
                      const std::function<Status()>& reset, const ProgressFn& progress) {
  Status last;
  for (size_t c = 0; c < f.stored.size(); ++c) {
    if (c > 0) CKPT_RETURN_IF_ERROR(reset());
    HashingSink hashing(sink);
    CKPT_RETURN_IF_ERROR(storage.get_to_sink(f.stored[c], hashing, progress));
    if (hashing.bytes() != f.size) {
      last = Status(Errc::kCorrupt, "checkpoint file " + storage.uri_of(f.stored[c]) + " changed size while reading");
    } else if (f.expected && hashing.hex_digest() != f.expected->hash) {
      last = checksum_mismatch(storage.uri_of(f.stored[c]), f.expected->hash, hashing.hex_digest());
    } else {
      return {};
    }
  }
  return last;
}

}  // namespace

uint64_t CheckpointView::total_bytes() const {
  uint64_t n = 0;
  for (const auto& f : files) n += f.size;
  return n;
}

Result<StepChoice> StepChoice::parse(const std::string& text) {
  StepChoice c;
  if (text.empty()) return c;
  if (text == "next") {
    c.kind = kNext;
    return c;
  }
  bool digits = text.size() <= 18 && text.find_first_not_of("0123456789") == std::string::npos;
  if (!digits) {
    return Status(Errc::kInvalidArgument,
                  "invalid step '" + text + "': a whole number, or 'next' for one more than the newest");
  }
  c.kind = kNumber;
  c.number = std::stoull(text);
  return c;
}

Result<CheckpointView> load_view(Storage& storage, StepChoice step) {
  CKPT_ASSIGN_OR_RETURN(auto objects, storage.list());
  auto steps = layout::steps_in(objects);
  if (step.kind == StepChoice::kNumber) {
    auto it = steps.find(step.number);
    if (it == steps.end() || it->second.deleted) {
      CheckpointView none;
      none.step = step.number;
      none.uri = storage.uri_of(kStepsDir + std::to_string(step.number));
      return none;
    }
    return layout::build_view(storage, objects, layout::step_prefix(step.number), step.number);
  }
  // The newest complete step; a newer incomplete one is an interrupted save.
  std::optional<CheckpointView> newest_incomplete;
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    if (it->second.deleted) continue;
    CKPT_ASSIGN_OR_RETURN(auto view, layout::build_view(storage, objects,
                                                        layout::step_prefix(it->first), it->first));
    if (view.complete() && !view.empty()) {
      if (newest_incomplete) {
        spdlog::warn("{}; using step {}", layout::incomplete_status(*newest_incomplete).message(),
                     it->first);
      }
      return view;
    }
    if (!newest_incomplete) newest_incomplete = std::move(view);
  }
  CKPT_ASSIGN_OR_RETURN(auto flat, layout::build_view(storage, objects, "", std::nullopt));
  if (!newest_incomplete || (flat.complete() && !flat.empty())) return flat;
  return *newest_incomplete;
}

Result<PruneReport> prune_steps(Storage& storage, unsigned keep) {
  PruneReport report;
  if (keep == 0) return report;
  CKPT_ASSIGN_OR_RETURN(auto objects, storage.list());
  auto steps = layout::steps_in(objects);
  std::vector<uint64_t> complete;  // newest first
  std::set<uint64_t> incomplete, doomed;
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    if (it->second.deleted) {
      doomed.insert(it->first);  // an earlier prune was interrupted
      continue;
    }
    CKPT_ASSIGN_OR_RETURN(auto view, layout::build_view(storage, objects,
                                                        layout::step_prefix(it->first), it->first));
    if (view.complete() && !view.empty()) {
      complete.push_back(it->first);
    } else {
      incomplete.insert(it->first);
    }
  }
  for (size_t i = 0; i < complete.size(); ++i) {
    if (i < keep) {
      report.kept.push_back(complete[i]);
    } else {
      doomed.insert(complete[i]);
    }
  }
  // Interrupted saves older than every kept step can no longer become the checkpoint; newer
  // ones may still be being written.
  if (!report.kept.empty()) {
    for (uint64_t n : incomplete) {
      if (n < report.kept.back()) doomed.insert(n);
    }
  }
  for (uint64_t n : doomed) {
    const std::string prefix = layout::step_prefix(n);
    const std::string marker = prefix + kDeletedMarker;
    // Marked first: a reader that lists from now on skips the step instead of finding half.
    StringSource empty("");
    CKPT_RETURN_IF_ERROR(storage.put(marker, empty, {}));
    std::vector<std::string> keys;
    for (const auto& o : objects) {
      if (o.key.compare(0, prefix.size(), prefix) == 0 && o.key != marker) keys.push_back(o.key);
    }
    CKPT_RETURN_IF_ERROR(run_parallel(keys.size(), jobs_for(0, storage),
                                      [&](size_t i) { return storage.remove(keys[i]); }));
    CKPT_RETURN_IF_ERROR(storage.remove(marker));
    spdlog::debug("deleted step {} of {}", n, storage.location().uri);
    report.deleted.push_back(n);
  }
  return report;
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

Result<std::pair<Storage*, CheckpointView>> Checkpointer::source() {
  std::vector<std::string> configured;
  for (const auto& s : config_.sources) {
    if (!is_unset_location(s)) configured.push_back(s);
  }
  if (configured.empty()) {
    return Status(Errc::kNotConfigured,
                  "no previous checkpoint configured (--prev-checkpoint / CKPT_SRC is unset)");
  }
  sources_.resize(configured.size());
  Status worst;
  std::vector<std::string> passed;
  for (size_t i = 0; i < configured.size(); ++i) {
    if (!sources_[i]) {
      CKPT_ASSIGN_OR_RETURN(auto loc, parse_location(configured[i]));
      CKPT_ASSIGN_OR_RETURN(sources_[i], open_storage(loc, config_.storage));
    }
    CKPT_ASSIGN_OR_RETURN(auto view, load_view(*sources_[i], config_.step));
    if (view.complete() && !view.empty()) {
      if (!passed.empty()) {
        spdlog::info("using {} ({})", view.uri, join_list(passed, 3));
      }
      return std::make_pair(sources_[i].get(), std::move(view));
    }
    Status why = view.complete() ? Status(Errc::kNoCheckpoint, "no checkpoint at " + view.uri)
                                 : layout::incomplete_status(view);
    passed.push_back(why.message());
    if (!view.complete() && !rejected_) rejected_ = std::move(view);
    if (worst.ok() || (why.code() == Errc::kCorrupt && worst.code() != Errc::kCorrupt)) worst = why;
  }
  if (configured.size() == 1) return worst;
  return Status(worst.code(), "no complete checkpoint in any of " + std::to_string(configured.size()) +
                                  " sources: " + join_list(passed, 5));
}

// One input of a save: a local file, or a stream.
struct SaveInput {
  std::string key;
  fs::path path;
  uint64_t size = 0;
  ByteSource* stream = nullptr;
};

Result<SaveReport> Checkpointer::save_inputs(std::vector<SaveInput>& inputs) {
  CKPT_ASSIGN_OR_RETURN(Storage * storage, dest());
  CKPT_ASSIGN_OR_RETURN(auto objects, storage->list());
  SaveReport report;
  std::string prefix;
  if (config_.step.kind != StepChoice::kNone) {
    auto steps = layout::steps_in(objects);
    uint64_t n = config_.step.kind == StepChoice::kNumber ? config_.step.number
                 : steps.empty()                           ? 1
                                                           : steps.rbegin()->first + 1;
    prefix = layout::step_prefix(n);
    const std::string committed = prefix + kManifestDir;
    for (const auto& o : objects) {
      if (o.key.compare(0, committed.size(), committed) == 0 || o.key == prefix + kDeletedMarker) {
        return Status(Errc::kFailedPrecondition,
                      "step " + std::to_string(n) + " already exists at " + storage->location().uri +
                          " (steps are never overwritten; pass another --step or --step next)");
      }
    }
    report.step = n;
  }
  // A key that already holds data (the committed checkpoint's, perhaps) is written to staging
  // and published after this save commits, so an interruption never tears what is there.
  std::set<std::string> existing;
  for (const auto& o : objects) existing.insert(o.key);
  const std::string staging = prefix + kStagingDir + layout::new_save_id() + "/";
  std::vector<std::string> targets(inputs.size());
  std::vector<size_t> staged;
  uint64_t total = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string key = prefix + inputs[i].key;
    bool stage = existing.count(key) > 0;
    targets[i] = stage ? staging + inputs[i].key : key;
    if (stage) staged.push_back(i);
    total += inputs[i].size;
  }
  if (config_.progress) config_.progress->start(total, inputs.size());
  ProgressTracker tracker(config_.progress);
  auto progress = tracker.fn();
  std::vector<ManifestEntry> entries(inputs.size());
  const unsigned jobs = jobs_for(config_.jobs, *storage);
  Status run = run_parallel(inputs.size(), jobs, [&](size_t i) -> Status {
    const auto& in = inputs[i];
    std::unique_ptr<FdSource> file;
    if (!in.stream) {
      CKPT_ASSIGN_OR_RETURN(file, FdSource::open_file(in.path));
    }
    HashingSource hashing(in.stream ? *in.stream : *file);
    CKPT_RETURN_IF_ERROR(storage->put(targets[i], hashing, progress)
                             .with_context("saving " + (in.stream ? std::string("stdin") : in.path.string())));
    entries[i] = {hashing.bytes(), hashing.hex_digest()};
    spdlog::debug("saved {} ({} bytes) -> {}", in.stream ? "stream" : in.path.string(),
                  hashing.bytes(), storage->uri_of(targets[i]));
    return {};
  });
  if (config_.progress) config_.progress->finish();
  CKPT_RETURN_IF_ERROR(run);
  std::map<std::string, ManifestEntry> record;
  report.uri = prefix.empty() ? storage->location().uri : storage->uri_of(prefix.substr(0, prefix.size() - 1));
  report.files = inputs.size();
  for (size_t i = 0; i < inputs.size(); ++i) {
    report.bytes += entries[i].size;
    record[inputs[i].key] = entries[i];
  }
  CKPT_RETURN_IF_ERROR(storage->flush());
  if (config_.write_manifest) {
    report.manifest_key = prefix + kManifestDir + layout::new_save_id() + ".json";
    StringSource text(encode_manifest(record));
    CKPT_RETURN_IF_ERROR(storage->put(report.manifest_key, text, {}));
    CKPT_RETURN_IF_ERROR(storage->flush());
  }
  // Committed: now the staged copies take their places (readers accept either meanwhile).
  CKPT_RETURN_IF_ERROR(run_parallel(staged.size(), jobs, [&](size_t j) -> Status {
    size_t i = staged[j];
    CKPT_RETURN_IF_ERROR(storage->copy_from(*storage, targets[i], prefix + inputs[i].key)
                             .with_context("publishing " + storage->uri_of(prefix + inputs[i].key)));
    return storage->remove(targets[i]);
  }));
  remove_dead_staging(*storage, objects, prefix);
  if (!report.step && config_.write_manifest) {
    Status compacted = layout::compact_manifests(*storage, prefix);
    if (!compacted.ok()) spdlog::debug("manifests not compacted: {}", compacted.message());
  }
  if (report.step && config_.keep) {
    auto pruned = prune_steps(*storage, config_.keep);
    if (!pruned.ok()) spdlog::warn("could not delete old steps: {}", pruned.status().message());
  }
  CKPT_RETURN_IF_ERROR(storage->flush());
  return report;
}

Result<SaveReport> Checkpointer::save_path(const fs::path& path) {
  std::vector<SaveInput> items;
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
    items.push_back({std::move(key), p, size, nullptr});
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
      if (layout::is_bookkeeping(key)) {
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
  return save_inputs(items);
}

Result<SaveReport> Checkpointer::save_stream(ByteSource& src) {
  std::vector<SaveInput> items{{kStreamKey, {}, src.size_hint().value_or(0), &src}};
  return save_inputs(items);
}

Result<std::vector<StepInfo>> Checkpointer::list() {
  CKPT_ASSIGN_OR_RETURN(Storage * storage, dest());
  CKPT_ASSIGN_OR_RETURN(auto objects, storage->list());
  std::vector<StepInfo> out;
  auto info_of = [](const CheckpointView& v) {
    StepInfo info;
    info.step = v.step;
    info.state = !v.complete() ? "incomplete" : v.has_manifest ? "complete" : "unverified";
    info.files = v.files.size();
    info.bytes = v.total_bytes();
    info.committed_ns = v.committed_ns;
    if (!v.committed) info.problems.push_back("no manifest: its save did not finish");
    for (const auto& k : v.missing) info.problems.push_back("missing: " + k);
    for (const auto& k : v.mismatched) info.problems.push_back("wrong size: " + k);
    return info;
  };
  CKPT_ASSIGN_OR_RETURN(auto flat, layout::build_view(*storage, objects, "", std::nullopt));
  if (!flat.empty() || !flat.unrecorded.empty()) out.push_back(info_of(flat));
  for (const auto& [n, entry] : layout::steps_in(objects)) {
    if (entry.deleted) {
      StepInfo info;
      info.step = n;
      info.state = "deleted";
      info.bytes = entry.bytes;
      out.push_back(info);
      continue;
    }
    CKPT_ASSIGN_OR_RETURN(auto view, layout::build_view(*storage, objects, layout::step_prefix(n), n));
    out.push_back(info_of(view));
  }
  return out;
}

Result<PruneReport> Checkpointer::prune(unsigned keep) {
  CKPT_ASSIGN_OR_RETURN(Storage * storage, dest());
  auto r = prune_steps(*storage, keep);
  CKPT_RETURN_IF_ERROR(storage->flush());
  return r;
}

Status Checkpointer::carry_forward(Storage& from, const CheckpointView& view, const fs::path& restored,
                                   RestoreReport& report) {
  if (is_unset_location(config_.dest)) {
    spdlog::debug("carry-forward: no destination configured");
    return {};
  }
  CKPT_ASSIGN_OR_RETURN(Storage * to, dest());
  if (to->location().uri == from.location().uri) return {};
  CKPT_ASSIGN_OR_RETURN(auto objects, to->list());
  CKPT_ASSIGN_OR_RETURN(auto current, load_view(*to));
  if (current.complete() && !current.empty()) {
    spdlog::info("not carrying forward: {} already holds a checkpoint", current.uri);
    return {};
  }
  std::string prefix;
  if (view.step) {
    auto steps = layout::steps_in(objects);
    uint64_t n = steps.count(*view.step) ? steps.rbegin()->first + 1 : *view.step;
    prefix = layout::step_prefix(n);
  }
  std::map<std::string, ManifestEntry> record;
  for (const auto& f : view.files) {
    if (f.expected) record[f.key] = *f.expected;
  }
  std::mutex mu;
  Status run = run_parallel(view.files.size(), jobs_for(config_.jobs, *to), [&](size_t i) -> Status {
    const auto& f = view.files[i];
    Status st = to->copy_from(from, f.stored.front(), prefix + f.key);
    if (st.code() == Errc::kUnsupported) {
      // Another kind of storage: upload what was just restored and verified.
      CKPT_ASSIGN_OR_RETURN(auto file, FdSource::open_file(restored / f.key));
      st = to->put(prefix + f.key, *file, {});
    }
    CKPT_RETURN_IF_ERROR(st);
    if (!f.expected) {
      uint64_t size = 0;
      CKPT_ASSIGN_OR_RETURN(auto hash, hash_file(restored / f.key, &size));
      std::lock_guard<std::mutex> lock(mu);
      record[f.key] = {size, hash};
    }
    return {};
  });
  CKPT_RETURN_IF_ERROR(run.with_context("carrying the checkpoint forward to " + to->location().uri));
  CKPT_RETURN_IF_ERROR(to->flush());
  StringSource text(encode_manifest(record));
  CKPT_RETURN_IF_ERROR(to->put(prefix + kManifestDir + layout::new_save_id() + ".json", text, {}));
  CKPT_RETURN_IF_ERROR(to->flush());
  report.carried_to = prefix.empty() ? to->location().uri : to->uri_of(prefix.substr(0, prefix.size() - 1));
  return {};
}

Result<RestoreReport> Checkpointer::restore(const std::optional<fs::path>& dir) {
  RestoreReport report;
  if (dir) {
    std::error_code ec;
    if (!fs::is_directory(*dir, ec)) {
      return Status(Errc::kInvalidArgument, "Checkpoints can be restored to a directory only: '" +
                                                dir->string() + "' is not an existing directory");
    }
    report.dir = *dir;
  }
  CKPT_ASSIGN_OR_RETURN(auto found, source());
  Storage* storage = found.first;
  const CheckpointView& view = found.second;
  report.source = view.uri;
  report.step = view.step;
  CKPT_RETURN_IF_ERROR(check_restorable(view));
  for (const auto& key : view.unrecorded) {
    spdlog::warn("ignoring {}: not recorded by any manifest (left by an unfinished save?)",
                 join_key(view.uri, key));
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
    auto rewind = [&]() -> Status {
      if (::ftruncate(fd, 0) != 0 || ::lseek(fd, 0, SEEK_SET) != 0) {
        return errno_status(errno, "cannot truncate", t.tmp.string());
      }
      return {};
    };
    Status got = fetch_verified(*storage, *t.file, out, rewind, progress);
    if (::close(fd) != 0 && got.ok()) got = errno_status(errno, "cannot write", t.target.string());
    return got;
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
  if (config_.carry_forward) CKPT_RETURN_IF_ERROR(carry_forward(*storage, view, report.dir, report));
  return report;
}

Status Checkpointer::read(ByteSink& sink) {
  CKPT_ASSIGN_OR_RETURN(auto found, source());
  const CheckpointView& view = found.second;
  if (view.files.size() > 1) {
    return Status(Errc::kFailedPrecondition,
                  "Expected exactly one checkpoint - found " + std::to_string(view.files.size()));
  }
  // A sink that cannot be rewound (stdout) gets one try: the first place that holds the file.
  return fetch_verified(*found.first, view.files.front(), sink,
                        [] { return Status(Errc::kCorrupt, "cannot retry a verified read"); }, {});
}

Status Checkpointer::read_to_file(const fs::path& path) {
  fs::path tmp = path.parent_path() / ("." + path.filename().string() + ".ckpt-part-" + random_token());
  int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return errno_status(errno, "cannot create", tmp.string());
  FdSink sink(fd, path.string());
  Status st;
  {
    auto found = source();
    if (!found.ok()) {
      st = found.status();
    } else if (found->second.files.size() > 1) {
      st = Status(Errc::kFailedPrecondition, "Expected exactly one checkpoint - found " +
                                                 std::to_string(found->second.files.size()));
    } else {
      st = fetch_verified(*found->first, found->second.files.front(), sink, [&]() -> Status {
        if (::ftruncate(fd, 0) != 0 || ::lseek(fd, 0, SEEK_SET) != 0) {
          return errno_status(errno, "cannot truncate", tmp.string());
        }
        return {};
      }, {});
    }
  }
  if (::close(fd) != 0 && st.ok()) st = errno_status(errno, "cannot write", path.string());
  if (st.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    st = errno_status(errno, "cannot rename into", path.string());
  }
  if (!st.ok()) ::unlink(tmp.c_str());
  return st;
}

ExistsReport Checkpointer::exists(bool verify_content) {
  ExistsReport r;
  for (const auto& s : config_.sources) r.configured = r.configured || !is_unset_location(s);
  auto found = source();
  if (!found.ok()) {
    const Errc code = found.status().code();
    r.state = code == Errc::kNotConfigured ? "not-configured"
              : code == Errc::kNoCheckpoint ? "missing"
              : code == Errc::kCorrupt      ? "incomplete"
                                            : "error";
    r.status = found.status();
    if (rejected_) {
      r.source = rejected_->uri;
      r.step = rejected_->step;
      r.files = rejected_->files.size();
      r.bytes = rejected_->total_bytes();
      if (!rejected_->committed) r.problems.push_back("no manifest: its save did not finish");
      for (const auto& k : rejected_->missing) r.problems.push_back("missing: " + k);
      for (const auto& k : rejected_->mismatched) r.problems.push_back("wrong size: " + k);
    }
    return r;
  }
  Storage& storage = *found->first;
  const CheckpointView& view = found->second;
  r.source = view.uri;
  r.step = view.step;
  r.files = view.files.size();
  r.bytes = view.total_bytes();
  if (!view.has_manifest) {
    r.state = "unverified";
    return r;
  }
  if (verify_content) {
    std::mutex mu;
    const unsigned jobs = jobs_for(config_.jobs, storage);
    Status run = run_parallel(view.files.size(), jobs, [&](size_t i) -> Status {
      const auto& f = view.files[i];
      NullSink null;
      Status st = fetch_verified(storage, f, null, [] { return Status(); }, {});
      if (st.code() == Errc::kCorrupt) {
        std::lock_guard<std::mutex> lock(mu);
        r.problems.push_back("checksum mismatch: " + f.key);
      }
      return st;
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
