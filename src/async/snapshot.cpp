// Snapshots for asynchronous saves: a point-in-time copy of PATH in a staging directory on
// its filesystem, taken file by file and checked against each file's state before and after,
// so no snapshot holds a file that was being written.
#include "async/snapshot.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <system_error>
#include <memory>
#include <thread>

#include <spdlog/spdlog.h>

#include "ckpt/hash.h"
#include "ckpt/io.h"

namespace fs = std::filesystem;

namespace ckpt::async {
namespace {

struct Entry {
  std::string rel;  // '/'-separated, relative to the root ("" for a single file: its name)
  fs::path abs;
  struct stat st {};
};

bool same_state(const struct stat& a, const struct stat& b) {
  return a.st_size == b.st_size && a.st_ino == b.st_ino && a.st_dev == b.st_dev &&
         a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec &&
         a.st_ctim.tv_sec == b.st_ctim.tv_sec && a.st_ctim.tv_nsec == b.st_ctim.tv_nsec;
}

// The regular files of a file or tree, sorted, skipping what a save skips (.ckpt, links to
// folders, special files) and the staging folder if it lies inside.
Result<std::vector<Entry>> collect(const fs::path& path, const fs::path& exclude) {
  std::vector<Entry> out;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errno_status(errno, "cannot snapshot", path.string());
  if (S_ISREG(st.st_mode)) {
    out.push_back({path.filename().string(), path, st});
    return out;
  }
  if (!S_ISDIR(st.st_mode)) {
    return Status(Errc::kInvalidArgument,
                  "cannot save '" + path.string() + "': not a regular file or directory");
  }
  std::error_code ec;
  fs::recursive_directory_iterator it(path, fs::directory_options::none, ec), end;
  if (ec) return errno_status(ec.value(), "cannot list", path.string());
  for (; it != end; it.increment(ec)) {
    if (ec) return errno_status(ec.value(), "cannot list", path.string());
    std::string rel = it->path().lexically_relative(path).generic_string();
    std::error_code fec;
    if (rel == kReservedDir || rel.rfind(std::string(kReservedDir) + "/", 0) == 0 ||
        (!exclude.empty() && it->path() == exclude)) {
      if (it->is_directory(fec)) it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file(fec)) continue;
    Entry e{rel, it->path(), {}};
    if (::stat(e.abs.c_str(), &e.st) != 0) {
      if (errno == ENOENT) continue;  // removed while we listed
      return errno_status(errno, "cannot stat", e.abs.string());
    }
    out.push_back(std::move(e));
  }
  std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) { return a.rel < b.rel; });
  return out;
}

std::string fingerprint_of(const std::vector<Entry>& entries) {
  Hasher h;
  for (const auto& e : entries) {
    char line[128];
    int n = std::snprintf(line, sizeof line, "\n%llu %lld.%09ld %llu ",
                          static_cast<unsigned long long>(e.st.st_size),
                          static_cast<long long>(e.st.st_mtim.tv_sec), e.st.st_mtim.tv_nsec,
                          static_cast<unsigned long long>(e.st.st_ino));
    h.update(e.rel.data(), e.rel.size());
    h.update(line, static_cast<size_t>(n));
  }
  return h.hex_digest();
}

Status make_parents(const fs::path& root, const std::string& rel) {
  auto parent = (root / rel).parent_path();
  std::error_code ec;
  fs::create_directories(parent, ec);
  return ec ? errno_status(ec.value(), "cannot create directory", parent.string()) : Status();
}

}  // namespace

Result<std::string> fingerprint(const fs::path& path) {
  CKPT_ASSIGN_OR_RETURN(auto entries, collect(path, {}));
  return fingerprint_of(entries);
}

Result<Snapshot> scan(const fs::path& path) {
  CKPT_ASSIGN_OR_RETURN(auto entries, collect(path, {}));
  if (entries.empty()) {
    return Status(Errc::kInvalidArgument, "nothing to save: '" + path.string() + "' has no files");
  }
  Snapshot snap;
  snap.dir = path;
  snap.fingerprint = fingerprint_of(entries);
  snap.files = entries.size();
  for (const auto& e : entries) snap.bytes += static_cast<uint64_t>(e.st.st_size);
  return snap;
}

Result<Snapshot> take_snapshot(const fs::path& path, const fs::path& dir, const fs::path& staging_root,
                               int rounds, const std::string& skip_if_fingerprint) {
  auto begin = std::chrono::steady_clock::now();
  Status last;
  for (int round = 0; round < std::max(1, rounds); ++round) {
    if (round > 0) std::this_thread::sleep_for(std::chrono::milliseconds(50 * round));
    CKPT_ASSIGN_OR_RETURN(auto entries, collect(path, staging_root));
    Snapshot snap;
    snap.dir = dir;
    snap.fingerprint = fingerprint_of(entries);
    if (!skip_if_fingerprint.empty() && snap.fingerprint == skip_if_fingerprint) {
      snap.skipped = true;
      return snap;
    }
    if (entries.empty()) {
      return Status(Errc::kInvalidArgument, "nothing to save: '" + path.string() + "' has no files");
    }
    uint64_t total = 0;
    for (const auto& e : entries) total += static_cast<uint64_t>(e.st.st_size);
    std::error_code ec;
    fs::remove_all(dir, ec);
    fs::create_directories(dir, ec);
    if (ec) return errno_status(ec.value(), "cannot create staging directory", dir.string());
    auto fail = [&](Status st) {
      fs::remove_all(dir, ec);
      return st;
    };
    bool changed = false;
    for (size_t i = 0; i < entries.size() && !changed; ++i) {
      const auto& e = entries[i];
      Status made = make_parents(dir, e.rel);
      if (!made.ok()) return fail(made);
      auto copied = copy_local_file(e.abs, dir / e.rel);
      if (!copied.ok()) {
        if (copied.status().code() == Errc::kNotFound) {  // removed meanwhile: a new round
          changed = true;
          break;
        }
        return fail(copied.status().with_context("snapshot of " + path.string()));
      }
      if (i == 0) {
        snap.reflinked = *copied;
        if (!snap.reflinked) {
          // A real copy: make sure the rest fits before writing it, so a full staging
          // filesystem fails at once instead of after filling it.
          struct statvfs vfs {};
          uint64_t need = total - static_cast<uint64_t>(e.st.st_size);
          if (::statvfs(dir.c_str(), &vfs) == 0) {
            uint64_t avail = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
            if (avail < need + (16u << 20)) {
              return fail(Status(Errc::kNoSpace,
                                 "staging filesystem of " + staging_root.string() + " has " +
                                     std::to_string(avail >> 20) + " MiB free; the snapshot of " +
                                     path.string() + " needs " + std::to_string((need >> 20) + 16) +
                                     " MiB more (use --staging or CKPT_STAGING on a larger one)"));
            }
          }
        }
      }
      struct stat after {};
      if (::stat(e.abs.c_str(), &after) != 0 || !same_state(e.st, after)) changed = true;
    }
    if (!changed) {
      snap.files = entries.size();
      snap.bytes = total;
      snap.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
      return snap;
    }
    fs::remove_all(dir, ec);
    last = Status(Errc::kFailedPrecondition,
                  "files in " + path.string() + " kept changing while they were snapshotted (" +
                      std::to_string(rounds) + " tries); save again once they are written");
    spdlog::debug("snapshot of {}: a file changed while it was copied; retrying", path.string());
  }
  return last;
}

}  // namespace ckpt::async

namespace ckpt::async {

Result<Snapshot> take_stream_snapshot(ByteSource& src, const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return errno_status(ec.value(), "cannot create staging directory", dir.string());
  Snapshot snap;
  snap.dir = dir;
  auto begin = std::chrono::steady_clock::now();
  auto target = dir / kStreamKey;
  int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return errno_status(errno, "cannot create", target.string());
  std::unique_ptr<char[]> buf(new char[kCopyBufferSize]);
  Status st;
  for (;;) {
    auto n = src.read(buf.get(), kCopyBufferSize);
    if (!n.ok()) {
      st = n.status();
      break;
    }
    if (*n == 0) break;
    st = write_all(fd, buf.get(), *n, target.string());
    if (!st.ok()) break;
    snap.bytes += *n;
  }
  if (::close(fd) != 0 && st.ok()) st = errno_status(errno, "cannot write", target.string());
  if (!st.ok()) {
    fs::remove_all(dir, ec);
    return st;
  }
  snap.files = 1;
  snap.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  return snap;
}

}  // namespace ckpt::async
