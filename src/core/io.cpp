#include "ckpt/io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <random>

namespace ckpt {

FdSource::~FdSource() {
  if (owned_ && fd_ >= 0) ::close(fd_);
}

Result<std::unique_ptr<FdSource>> FdSource::open_file(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno_status(errno, "cannot open", path.string());
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return errno_status(err, "cannot stat", path.string());
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    return Status(Errc::kInvalidArgument, "'" + path.string() + "' is a directory");
  }
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  std::optional<uint64_t> size;
  if (S_ISREG(st.st_mode)) size = static_cast<uint64_t>(st.st_size);
  return std::make_unique<FdSource>(fd, true, path.string(), size);
}

Result<size_t> FdSource::read(void* buf, size_t len) {
  for (;;) {
    ssize_t n = ::read(fd_, buf, len);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    return errno_status(errno, "cannot read", name_);
  }
}

Result<size_t> StringSource::read(void* buf, size_t len) {
  size_t n = std::min(len, data_.size() - pos_);
  std::memcpy(buf, data_.data() + pos_, n);
  pos_ += n;
  return n;
}

Result<size_t> HashingSource::read(void* buf, size_t len) {
  auto n = inner_.read(buf, len);
  if (n.ok() && *n > 0) {
    hasher_.update(buf, *n);
    bytes_ += *n;
  }
  return n;
}

void HashingSource::copied(const void* data, size_t len) {
  hasher_.update(data, len);
  bytes_ += len;
  inner_.copied(data, len);
}

FdSink::FdSink(int fd, std::string name) : fd_(fd), name_(std::move(name)) {
  struct stat st {};
  // Appending descriptors ignore offsets (and copy_file_range refuses them).
  regular_ = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && !(::fcntl(fd, F_GETFL) & O_APPEND);
}

void HashingSink::copied(const void* data, size_t len) {
  hasher_.update(data, len);
  bytes_ += len;
  inner_.copied(data, len);
}

Status read_range(int fd, uint64_t offset, uint64_t len, char* buf, size_t buf_len,
                  std::string_view name, const std::function<void(const void*, size_t)>& fn) {
  for (uint64_t done = 0; done < len;) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf_len, len - done));
    ssize_t n = ::pread(fd, buf, want, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_status(errno, "cannot read", name);
    if (n == 0) return Status(Errc::kIo, std::string(name) + " shrank while being read");
    fn(buf, static_cast<size_t>(n));
    done += static_cast<uint64_t>(n);
  }
  return {};
}

Status write_all(int fd, const void* buf, size_t len, std::string_view name) {
  const char* p = static_cast<const char*>(buf);
  while (len > 0) {
    ssize_t n = ::write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_status(errno, "cannot write", name);
    }
    p += n;
    len -= static_cast<size_t>(n);
  }
  return {};
}

Status FdSink::write(const void* buf, size_t len) { return write_all(fd_, buf, len, name_); }

Status HashingSink::write(const void* buf, size_t len) {
  hasher_.update(buf, len);
  bytes_ += len;
  return inner_.write(buf, len);
}

Result<bool> copy_local_file(const std::filesystem::path& from, const std::filesystem::path& to) {
  int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return errno_status(errno, "cannot open", from.string());
  int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (out < 0) {
    int err = errno;
    ::close(in);
    return errno_status(err, "cannot create", to.string());
  }
  Result<bool> result = true;
  if (::ioctl(out, FICLONE, in) != 0) {
    result = false;
    bool copied_any = false;
    for (;;) {
      ssize_t n = ::copy_file_range(in, nullptr, out, nullptr, 1u << 30, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && !copied_any &&
          (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
        // No kernel copy between these files: through a buffer.
        std::unique_ptr<char[]> buf(new char[kCopyBufferSize]);
        for (;;) {
          ssize_t r = ::read(in, buf.get(), kCopyBufferSize);
          if (r < 0 && errno == EINTR) continue;
          if (r < 0) {
            result = errno_status(errno, "cannot read", from.string());
            break;
          }
          if (r == 0) break;
          Status w = write_all(out, buf.get(), static_cast<size_t>(r), to.string());
          if (!w.ok()) {
            result = w;
            break;
          }
        }
        break;
      }
      if (n < 0) {
        result = errno_status(errno, "cannot copy into", to.string());
        break;
      }
      if (n == 0) break;
      copied_any = true;
    }
  }
  ::close(in);
  if (::close(out) != 0 && result.ok()) result = errno_status(errno, "cannot write", to.string());
  if (!result.ok()) ::unlink(to.c_str());
  return result;
}

Status write_file_atomic(const std::filesystem::path& path, std::string_view data) {
  auto tmp = path.parent_path() / ("." + path.filename().string() + ".tmp-" + random_token());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return errno_status(errno, "cannot create", tmp.string());
  Status st = write_all(fd, data.data(), data.size(), path.string());
  if (::close(fd) != 0 && st.ok()) st = errno_status(errno, "cannot write", path.string());
  if (st.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    st = errno_status(errno, "cannot rename into", path.string());
  }
  if (!st.ok()) ::unlink(tmp.c_str());
  return st;
}

std::string format_bytes(uint64_t bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  }
  return buf;
}

std::string random_token() {
  static thread_local std::mt19937_64 rng{std::random_device{}() ^
                                          (static_cast<uint64_t>(::getpid()) << 32)};
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

}  // namespace ckpt
