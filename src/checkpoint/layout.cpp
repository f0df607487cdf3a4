#include "checkpoint/layout.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <set>
#include <unordered_map>

#include "ckpt/io.h"

namespace ckpt::layout {
namespace {

const std::string kReserved = std::string(kReservedDir) + "/";

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

std::string this_host() {
  char host[64] = "host";
  ::gethostname(host, sizeof host - 1);
  host[sizeof host - 1] = 0;
  for (char* c = host; *c; ++c) {
    if (*c == '/' || *c == ' ' || *c == '-') *c = '_';
  }
  return host;
}

std::string join_list(const std::vector<std::string>& keys, size_t max = 5) {
  std::string out;
  for (size_t i = 0; i < keys.size() && i < max; ++i) out += (i ? ", " : "") + keys[i];
  if (keys.size() > max) out += ", ... (" + std::to_string(keys.size()) + " in all)";
  return out;
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

bool is_bookkeeping(const std::string& key) { return key == kReservedDir || starts_with(key, kReserved); }

std::string step_prefix(uint64_t step) { return kStepsDir + std::to_string(step) + "/"; }

std::optional<uint64_t> step_of(const std::string& key, std::string* rest) {
  static const std::string steps = kStepsDir;
  if (!starts_with(key, steps)) return std::nullopt;
  size_t end = key.find('/', steps.size());
  if (end == std::string::npos || end == steps.size() || end - steps.size() > 19) return std::nullopt;
  uint64_t n = 0;
  for (size_t i = steps.size(); i < end; ++i) {
    if (key[i] < '0' || key[i] > '9') return std::nullopt;
    n = n * 10 + static_cast<uint64_t>(key[i] - '0');
  }
  // One spelling per step: "7", never "07".
  if (key[steps.size()] == '0' && end - steps.size() > 1) return std::nullopt;
  if (rest) *rest = key.substr(end + 1);
  return n;
}

std::string new_save_id() {
  char stamp[32];
  std::snprintf(stamp, sizeof stamp, "%020lld", static_cast<long long>(now_ns()));
  return std::string(stamp) + "-" + this_host() + "-" + std::to_string(::getpid()) + "-" + random_token();
}

int64_t id_time(const std::string& id) {
  auto name = id.substr(id.rfind('/') + 1);
  if (name.size() < 20) return 0;
  int64_t t = 0;
  for (size_t i = 0; i < 20; ++i) {
    if (name[i] < '0' || name[i] > '9') return 0;
    t = t * 10 + (name[i] - '0');
  }
  return t;
}

bool id_may_be_live(const std::string& id) {
  constexpr int64_t kDay = 86400LL * 1000000000LL;
  // <time>-<host>-<pid>-<token>
  size_t a = id.find('-'), c = id.rfind('-');
  size_t b = c == std::string::npos || c == 0 ? std::string::npos : id.rfind('-', c - 1);
  if (a == std::string::npos || b == std::string::npos || b <= a) return now_ns() - id_time(id) < kDay;
  std::string host = id.substr(a + 1, b - a - 1);
  if (host != this_host()) return now_ns() - id_time(id) < kDay;
  long pid = std::strtol(id.c_str() + b + 1, nullptr, 10);
  return pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM);
}

std::map<uint64_t, StepEntry> steps_in(const std::vector<ObjectInfo>& objects) {
  std::map<uint64_t, StepEntry> out;
  std::string rest;
  for (const auto& o : objects) {
    auto n = step_of(o.key, &rest);
    if (!n) continue;
    auto& e = out[*n];
    if (rest == kDeletedMarker) e.deleted = true;
    if (!is_bookkeeping(rest)) e.bytes += o.size;
  }
  return out;
}

Result<std::map<std::string, ManifestEntry>> read_manifest(Storage& storage, const std::string& key) {
  StringSink text;
  Status got = storage.get_to_sink(key, text, {});
  // Only compaction deletes manifests, and only superseded ones: one gone since the listing
  // recorded nothing that counts.
  if (got.code() == Errc::kNotFound) return std::map<std::string, ManifestEntry>{};
  CKPT_RETURN_IF_ERROR(got);
  return decode_manifest(text.data(), storage.uri_of(key));
}

std::vector<std::string> manifests_in(const std::vector<ObjectInfo>& objects, const std::string& prefix) {
  const std::string dir = prefix + kManifestDir;
  std::vector<std::string> out;
  for (const auto& o : objects) {
    if (o.key.compare(0, dir.size(), dir) == 0 && o.key.size() > dir.size() + 5 &&
        o.key.compare(o.key.size() - 5, 5, ".json") == 0 && o.key.find('/', dir.size()) == std::string::npos) {
      out.push_back(o.key);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

Status compact_manifests(Storage& storage, const std::string& prefix) {
  CKPT_ASSIGN_OR_RETURN(auto objects, storage.list());
  auto keys = manifests_in(objects, prefix);
  std::set<std::string> newer;  // keys recorded by manifests newer than the one looked at
  std::vector<std::string> superseded;
  for (auto it = keys.rbegin(); it != keys.rend(); ++it) {
    CKPT_ASSIGN_OR_RETURN(auto entries, read_manifest(storage, *it));
    bool needed = false;
    for (const auto& [k, e] : entries) needed = newer.insert(k).second || needed;
    if (!needed && it != keys.rbegin()) superseded.push_back(*it);
  }
  for (const auto& k : superseded) CKPT_RETURN_IF_ERROR(storage.remove(k));
  return {};
}

Result<CheckpointView> build_view(Storage& storage, const std::vector<ObjectInfo>& objects,
                                  const std::string& prefix, std::optional<uint64_t> step) {
  CheckpointView view;
  view.step = step;
  view.uri = prefix.empty() ? storage.location().uri
                            : storage.uri_of(prefix.substr(0, prefix.size() - 1));
  std::unordered_map<std::string, uint64_t> content;
  std::vector<std::string> content_order, manifest_keys;
  std::unordered_map<std::string, std::vector<ObjectInfo>> staged;  // key -> staged copies
  const std::string staging = kStagingDir;
  for (const auto& o : objects) {
    if (!starts_with(o.key, prefix)) continue;
    std::string rel = o.key.substr(prefix.size());
    if (!is_bookkeeping(rel)) {
      content.emplace(rel, o.size);
      content_order.push_back(rel);
    } else if (starts_with(rel, staging)) {
      size_t slash = rel.find('/', staging.size());
      if (slash != std::string::npos) staged[rel.substr(slash + 1)].push_back(o);
    }
  }
  manifest_keys = manifests_in(objects, prefix);
  view.manifests = manifest_keys.size();
  view.has_manifest = !manifest_keys.empty();
  if (!view.has_manifest) {
    if (step) {
      // A step is only a checkpoint once its manifest is there.
      view.committed = false;
      view.unrecorded = content_order;
    } else {
      for (const auto& key : content_order) {
        view.files.push_back({key, content[key], std::nullopt, {prefix + key}});
      }
    }
    return view;
  }
  view.committed_ns = id_time(manifest_keys.back());
  std::map<std::string, ManifestEntry> recorded;
  for (const auto& mk : manifest_keys) {
    CKPT_ASSIGN_OR_RETURN(auto entries, read_manifest(storage, mk));
    for (auto& [k, e] : entries) recorded[k] = std::move(e);  // newer manifests win
  }
  for (const auto& [key, entry] : recorded) {
    CheckpointView::File file{key, entry.size, entry, {}};
    auto it = content.find(key);
    if (it != content.end() && it->second == entry.size) file.stored.push_back(prefix + key);
    auto st = staged.find(key);
    if (st != staged.end()) {
      // Oldest staging id first: an interrupted publish left the older copies.
      for (const auto& o : st->second) {
        if (o.size == entry.size) file.stored.push_back(o.key);
      }
    }
    if (!file.stored.empty()) {
      view.files.push_back(std::move(file));
    } else if (it == content.end() && st == staged.end()) {
      view.missing.push_back(key);
    } else {
      view.mismatched.push_back(key);
    }
  }
  for (const auto& key : content_order) {
    if (!recorded.count(key)) view.unrecorded.push_back(key);
  }
  return view;
}

Status incomplete_status(const CheckpointView& view) {
  if (!view.committed) {
    return Status(Errc::kCorrupt, "checkpoint at " + view.uri +
                                      " is incomplete: no manifest (its save did not finish)");
  }
  std::string msg = "checkpoint at " + view.uri + " is incomplete or corrupt:";
  if (!view.missing.empty()) msg += " missing " + join_list(view.missing) + ";";
  if (!view.mismatched.empty()) msg += " wrong size " + join_list(view.mismatched) + ";";
  msg.pop_back();
  return Status(Errc::kCorrupt, msg);
}

}  // namespace ckpt::layout
