// Local filesystem driver. Writes go to <root>/.ckpt/tmp/<token> and are renamed into place,
// so a reader sees the old file or the new one and a killed writer leaves only a temp file.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <cerrno>
#include <cstring>
#include <memory>
#include <system_error>
#include <vector>

#include "ckpt/io.h"
#include "ckpt/local_file.h"
#include "ckpt/storage.h"

namespace fs = std::filesystem;

namespace ckpt {
namespace {

class MappedFile : public RandomAccessFile {
 public:
  MappedFile(int fd, uint64_t size, const uint8_t* map, std::string name)
      : fd_(fd), size_(size), map_(map), name_(std::move(name)) {}
  ~MappedFile() override {
    if (map_) ::munmap(const_cast<uint8_t*>(map_), size_);
    ::close(fd_);
  }
  uint64_t size() const override { return size_; }
  const uint8_t* data() const override { return map_; }
  // pread, not a copy out of the mapping: faulting the mapping in was 3x slower here.
  Result<size_t> read_at(uint64_t offset, void* buf, size_t len) override {
    size_t done = 0;
    while (done < len && offset + done < size_) {
      ssize_t n = ::pread(fd_, static_cast<char*>(buf) + done,
                          static_cast<size_t>(std::min<uint64_t>(len - done, size_ - offset - done)),
                          static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return errno_status(errno, "cannot read", name_);
      if (n == 0) break;  // the file shrank
      done += static_cast<size_t>(n);
    }
    return done;
  }

 private:
  int fd_;
  uint64_t size_;
  const uint8_t* map_;
  std::string name_;
};

// Copies in the kernel (copy_file_range: no trip through user space for the copy) and feeds
// each copied range to on_copied, read back with pread so it can be hashed (faster than
// through a mapping on the VMs measured). Returns false, having copied nothing, where the
// kernel cannot do it.
Result<bool> kernel_copy(int in, int out, const std::string& name,
                         const std::function<void(const void*, size_t)>& on_copied) {
  struct stat st {};
  if (::fstat(in, &st) != 0 || !S_ISREG(st.st_mode)) return false;
  off_t off = ::lseek(in, 0, SEEK_CUR);
  if (off < 0) return false;
  const off_t start = off;
  std::unique_ptr<char[]> buf(new char[kCopyBufferSize]);
  for (;;) {
    ssize_t n = ::copy_file_range(in, nullptr, out, nullptr, kCopyBufferSize, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (off == start && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EBADF ||
                           errno == EOPNOTSUPP))
        return false;
      return errno_status(errno, "cannot write", name);
    }
    if (n == 0) return true;
    CKPT_RETURN_IF_ERROR(read_range(in, static_cast<uint64_t>(off), static_cast<uint64_t>(n),
                                    buf.get(), kCopyBufferSize, name, on_copied));
    off += n;
  }
}

// Copies src into an open descriptor: in the kernel when both ends are regular files, else in
// large chunks through a buffer.
Status copy_to_fd(ByteSource& src, int fd, const std::string& name, const ProgressFn& progress) {
  if (src.fd() >= 0) {
    CKPT_ASSIGN_OR_RETURN(bool done, kernel_copy(src.fd(), fd, name, [&](const void* p, size_t n) {
                            src.copied(p, n);
                            if (progress) progress(n);
                          }));
    if (done) return {};
  }
  std::unique_ptr<char[]> buf(new char[kCopyBufferSize]);
  for (;;) {
    CKPT_ASSIGN_OR_RETURN(size_t n, src.read(buf.get(), kCopyBufferSize));
    if (n == 0) return {};
    CKPT_RETURN_IF_ERROR(write_all(fd, buf.get(), n, name));
    if (progress) progress(n);
  }
}

class LocalStorage : public Storage {
 public:
  LocalStorage(Location loc, StorageOptions opts)
      : loc_(std::move(loc)), root_(loc_.path), opts_(std::move(opts)) {}

  const Location& location() const override { return loc_; }

  Result<std::vector<ObjectInfo>> list() override {
    std::error_code ec;
    auto st = fs::status(root_, ec);
    if (ec || !fs::exists(st)) return std::vector<ObjectInfo>{};
    if (!fs::is_directory(st)) {
      return Status(Errc::kInvalidArgument, "'" + loc_.uri + "' is not a directory");
    }
    // Concurrent savers rename and remove their temporary files and folders while we walk:
    // an entry that vanishes is skipped, a folder that vanishes under the walk restarts it.
    for (int attempt = 0;; ++attempt) {
      auto out = walk();
      if (out.ok() || out.status().code() != Errc::kNotFound || attempt == 20) return out;
    }
  }

  Result<std::optional<ObjectInfo>> stat(const std::string& key) override {
    struct stat st {};
    auto p = root_ / key;
    if (::stat(p.c_str(), &st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) return std::optional<ObjectInfo>{};
      return errno_status(errno, "cannot stat", p.string());
    }
    if (!S_ISREG(st.st_mode)) return std::optional<ObjectInfo>{};
    return std::optional<ObjectInfo>(ObjectInfo{key, static_cast<uint64_t>(st.st_size)});
  }

  Status put(const std::string& key, ByteSource& src, const ProgressFn& progress) override {
    CKPT_RETURN_IF_ERROR(check_relative_key(key));
    auto target = root_ / key;
    CKPT_RETURN_IF_ERROR(make_dirs(target.parent_path()));
    int fd = -1;
    CKPT_ASSIGN_OR_RETURN(fs::path tmp, make_temp([&](const fs::path& p) {
                            fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
                            return fd < 0 ? errno : 0;
                          }));
    Status st = copy_to_fd(src, fd, target.string(), progress);
    if (st.ok() && opts_.durable && ::fdatasync(fd) != 0) {
      st = errno_status(errno, "cannot sync", target.string());
    }
    if (::close(fd) != 0 && st.ok()) st = errno_status(errno, "cannot write", target.string());
    if (st.ok() && ::rename(tmp.c_str(), target.c_str()) != 0) {
      st = errno == EISDIR || errno == ENOTEMPTY || errno == EEXIST
               ? Status(Errc::kInvalidArgument,
                        "cannot replace directory '" + target.string() + "' with a file")
               : errno_status(errno, "cannot rename into", target.string());
    }
    if (!st.ok()) ::unlink(tmp.c_str());
    return st;
  }

  Status get_to_file(const std::string& key, const fs::path& dst,
                     const ProgressFn& progress) override {
    CKPT_ASSIGN_OR_RETURN(auto src, FdSource::open_file(root_ / key));
    int fd = ::open(dst.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return errno_status(errno, "cannot create", dst.string());
    Status st = copy_to_fd(*src, fd, dst.string(), progress);
    if (::close(fd) != 0 && st.ok()) st = errno_status(errno, "cannot write", dst.string());
    return st;
  }

  Status get_to_sink(const std::string& key, ByteSink& sink, const ProgressFn& progress) override {
    CKPT_ASSIGN_OR_RETURN(auto src, FdSource::open_file(root_ / key));
    if (sink.fd() >= 0 && src->fd() >= 0) {
      CKPT_ASSIGN_OR_RETURN(bool done,
                            kernel_copy(src->fd(), sink.fd(), uri_of(key), [&](const void* p, size_t n) {
                              sink.copied(p, n);
                              if (progress) progress(n);
                            }));
      if (done) return {};
    }
    std::unique_ptr<char[]> buf(new char[kCopyBufferSize]);
    for (;;) {
      CKPT_ASSIGN_OR_RETURN(size_t n, src->read(buf.get(), kCopyBufferSize));
      if (n == 0) return {};
      CKPT_RETURN_IF_ERROR(sink.write(buf.get(), n));
      if (progress) progress(n);
    }
  }

  Result<std::unique_ptr<RandomAccessFile>> open(const std::string& key) override {
    return open_local_file(key.empty() ? root_ : root_ / key);
  }

  Status remove(const std::string& key) override {
    auto p = root_ / key;
    if (::unlink(p.c_str()) != 0 && errno != ENOENT) return errno_status(errno, "cannot remove", p.string());
    // Folders left empty inside ckpt's bookkeeping (a deleted step, a published staging copy)
    // go too; the shared top folders stay, since a concurrent saver may be about to use them.
    if (key.compare(0, std::strlen(kReservedDir) + 1, std::string(kReservedDir) + "/") == 0) {
      for (fs::path dir = p.parent_path(); dir.parent_path() != root_ / kReservedDir &&
                                           dir != root_ / kReservedDir && dir != root_;
           dir = dir.parent_path()) {
        if (::rmdir(dir.c_str()) != 0) break;
      }
    }
    return {};
  }

  Status copy_from(Storage& from, const std::string& from_key, const std::string& key) override {
    auto* local = dynamic_cast<LocalStorage*>(&from);
    if (!local) return Storage::copy_from(from, from_key, key);
    CKPT_RETURN_IF_ERROR(check_relative_key(key));
    fs::path src = local->root_ / from_key, target = root_ / key;
    struct stat st {};
    if (::stat(src.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      return Status(Errc::kNotFound, from.uri_of(from_key) + ": not found");
    }
    CKPT_RETURN_IF_ERROR(make_dirs(target.parent_path()));
    Status done;
    CKPT_ASSIGN_OR_RETURN(fs::path tmp, make_temp([&](const fs::path& p) {
                            if (local == this) return ::link(src.c_str(), p.c_str()) == 0 ? 0 : errno;
                            auto copied = copy_local_file(src, p);
                            if (copied.ok()) return 0;
                            if (!fs::exists(p.parent_path())) return ENOENT;
                            done = copied.status();
                            return 0;
                          }));
    if (done.ok() && opts_.durable) done = sync_file(tmp);
    if (done.ok() && ::rename(tmp.c_str(), target.c_str()) != 0) {
      done = errno_status(errno, "cannot rename into", target.string());
    }
    if (!done.ok()) ::unlink(tmp.c_str());
    return done;
  }

  Status flush() override {
    // Leave no empty bookkeeping folders behind (a --no-manifest save is exactly flytekit's
    // layout); rmdir fails harmlessly while another saver still uses them.
    ::rmdir((root_ / kReservedDir / "tmp").c_str());
    ::rmdir((root_ / kReservedDir).c_str());
    if (!opts_.durable) return {};
    int fd = ::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno_status(errno, "cannot open", root_.string());
    int rc = ::syncfs(fd);
    int err = errno;
    ::close(fd);
    return rc == 0 ? Status() : errno_status(err, "cannot sync", root_.string());
  }

 private:
  Result<std::vector<ObjectInfo>> walk() {
    std::vector<ObjectInfo> out;
    std::error_code ec;
    fs::recursive_directory_iterator it(root_, fs::directory_options::none, ec), end;
    if (ec) return errno_status(ec.value(), "cannot list", loc_.uri);
    for (; it != end; it.increment(ec)) {
      if (ec) return errno_status(ec.value(), "cannot list", loc_.uri);
      std::error_code fec;
      if (!it->is_regular_file(fec)) continue;  // follows symlinks to files
      auto size = it->file_size(fec);
      if (fec == std::errc::no_such_file_or_directory) continue;
      if (fec) return errno_status(fec.value(), "cannot stat", it->path().string());
      out.push_back({it->path().lexically_relative(root_).generic_string(), static_cast<uint64_t>(size)});
    }
    std::sort(out.begin(), out.end(),
              [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
    return out;
  }

  // Makes a new temporary object with create(path) (returning 0 or an errno) under
  // <root>/.ckpt/tmp, on the targets' filesystem so that a rename publishes it. Another saver's
  // flush() may remove the empty folder between our mkdir and create: recreate and retry.
  Result<fs::path> make_temp(const std::function<int(const fs::path&)>& create) {
    auto tmp_dir = root_ / kReservedDir / "tmp";
    auto tmp = tmp_dir / random_token();
    int err = ENOENT;
    for (int attempt = 0; err == ENOENT && attempt < 1000; ++attempt) {
      // create_directories itself can trip over a concurrent rmdir (EEXIST, ENOENT): retry.
      Status made = make_dirs(tmp_dir);
      if (!made.ok() && attempt == 999) return made;
      err = create(tmp);
    }
    if (err) return errno_status(err, "cannot create", tmp.string());
    return tmp;
  }

  static Status sync_file(const fs::path& p) {
    int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno_status(errno, "cannot open", p.string());
    int rc = ::fdatasync(fd);
    int err = errno;
    ::close(fd);
    return rc == 0 ? Status() : errno_status(err, "cannot sync", p.string());
  }

  Status make_dirs(const fs::path& dir) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (!ec) return {};
    if (ec == std::errc::not_a_directory || ec == std::errc::file_exists) {
      return Status(Errc::kInvalidArgument,
                    "destination '" + dir.string() + "' is not a directory (a file is in the way)");
    }
    return errno_status(ec.value(), "cannot create directory", dir.string());
  }

  Location loc_;
  fs::path root_;
  StorageOptions opts_;
};

}  // namespace

Result<std::unique_ptr<RandomAccessFile>> open_local_file(const std::filesystem::path& p) {
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno_status(errno, "cannot open", p.string());
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status(Errc::kInvalidArgument, "'" + p.string() + "' is not a regular file");
  }
  auto size = static_cast<uint64_t>(st.st_size);
  const uint8_t* map = nullptr;
  if (size > 0) {
    void* m = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      return errno_status(err, "cannot map", p.string());
    }
    map = static_cast<const uint8_t*>(m);
  }
  return std::unique_ptr<RandomAccessFile>(new MappedFile(fd, size, map, p.string()));
}

std::unique_ptr<Storage> make_local_storage(const Location& loc, const StorageOptions& opts) {
  return std::make_unique<LocalStorage>(loc, opts);
}

}  // namespace ckpt
