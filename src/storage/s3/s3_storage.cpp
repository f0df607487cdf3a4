// The s3:// driver (plugin ckpt-s3.so). Uploads: one PUT up to a part, else a multipart
// upload with parts_in_flight parts in parallel (read straight from a regular file, or from
// a stream into buffers), completed only when every part succeeded and aborted otherwise.
// Downloads: the first part tells the size, the rest come as parallel
// ranged GETs pinned to the object's ETag. Memory stays within parts_in_flight x part_size.
// Copies between locations on one endpoint stay in the server: CopyObject up to 5 GiB, else
// a multipart upload of UploadPartCopy parts, as uploads are.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

#include "ckpt/io.h"
#include "ckpt/storage.h"
#include "storage/s3/credentials.h"
#include "storage/s3/http.h"
#include "storage/s3/s3_util.h"
#include "transfer/pool.h"

namespace ckpt::s3 {
namespace {

constexpr uint64_t kMinPartSize = 5ull << 20;  // S3's minimum for all parts but the last
constexpr uint64_t kMaxParts = 10000;
constexpr uint64_t kMaxCopy = 5ull << 30;  // S3's limit for CopyObject and for a copied part
constexpr size_t kReadAhead = 128 << 10;

long env_long(const EnvFn& env, const char* name, long fallback) {
  auto v = env(name);
  if (!v || v->empty()) return fallback;
  char* end = nullptr;
  long n = std::strtol(v->c_str(), &end, 10);
  return end && *end == '\0' && n > 0 ? n : fallback;
}

std::string first_set(const EnvFn& env, std::initializer_list<const char*> names) {
  for (const char* n : names) {
    auto v = env(n);
    if (v && !v->empty()) return *v;
  }
  return {};
}

// Total size from "Content-Range: bytes 0-99/1234".
std::optional<uint64_t> range_total(const std::string& content_range) {
  auto slash = content_range.rfind('/');
  if (slash == std::string::npos || slash + 1 >= content_range.size() ||
      content_range[slash + 1] == '*')
    return std::nullopt;
  return std::strtoull(content_range.c_str() + slash + 1, nullptr, 10);
}

Result<size_t> read_full(ByteSource& src, char* buf, size_t len) {
  size_t got = 0;
  while (got < len) {
    CKPT_ASSIGN_OR_RETURN(size_t n, src.read(buf + got, len - got));
    if (n == 0) break;
    got += n;
  }
  return got;
}

Status pwrite_all(int fd, uint64_t off, const char* data, size_t len, const std::string& path) {
  while (len > 0) {
    ssize_t n = ::pwrite(fd, data, len, static_cast<off_t>(off));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_status(errno, "write", path);
    }
    data += n;
    len -= static_cast<size_t>(n);
    off += static_cast<uint64_t>(n);
  }
  return {};
}

struct Head {
  uint64_t size = 0;
  std::string etag;
};

// The object a server-side copy reads: its x-amz-copy-source value and the ETag that pins
// every request of the copy to the version we looked at.
struct CopySource {
  std::string header;
  std::string etag;
  std::string uri;  // for messages
};

double jitter_unit() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

// Caps the parts in flight across every transfer of one storage at parts_in_flight x
// part_size bytes (in buffers, or read from files as they are sent), however many files the
// engine moves at once. A request larger than the whole budget still proceeds when nothing
// else holds any. Freed buffers are kept for reuse within the same limit: mapping and faulting
// in fresh ones cost the driver 3x its CPU time with 32 MiB parts (malloc maps every block of
// 32 MiB or more, whatever mallopt says).
class MemoryBudget {
 public:
  explicit MemoryBudget(uint64_t limit) : limit_(limit) {}
  void acquire(uint64_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return used_ == 0 || used_ + n <= limit_; });
    used_ += n;
  }
  // For a holder of buffers that only it can give back: waiting would deadlock.
  bool try_acquire(uint64_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    if (used_ != 0 && used_ + n > limit_) return false;
    used_ += n;
    return true;
  }
  void release(uint64_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    used_ -= n;
    cv_.notify_all();
  }
  std::vector<char> take_block(size_t cap) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = spare_.begin(); it != spare_.end(); ++it) {
      if (it->capacity() < cap) continue;
      std::vector<char> v = std::move(*it);
      spare_bytes_ -= v.capacity();
      spare_.erase(it);
      return v;
    }
    return {};
  }
  void give_block(std::vector<char>&& v) {
    std::lock_guard<std::mutex> lock(mu_);
    if (spare_bytes_ + v.capacity() > limit_) return;
    spare_bytes_ += v.capacity();
    spare_.push_back(std::move(v));
  }

 private:
  uint64_t limit_;
  uint64_t used_ = 0;
  uint64_t spare_bytes_ = 0;
  std::vector<std::vector<char>> spare_;
  std::mutex mu_;
  std::condition_variable cv_;
};

// Budget held for as long as it lives.
class Charge {
 public:
  Charge(MemoryBudget& budget, uint64_t n) : budget_(budget), n_(n) { budget_.acquire(n); }
  ~Charge() { budget_.release(n_); }
  Charge(const Charge&) = delete;
  Charge& operator=(const Charge&) = delete;

 private:
  MemoryBudget& budget_;
  uint64_t n_;
};

// A part buffer charged to the budget for as long as it lives.
class Buffer {
 public:
  Buffer(MemoryBudget& budget, size_t cap) : budget_(budget), charged_(cap) {
    budget_.acquire(cap);
    take(cap);
  }
  // A buffer only if the budget has room now.
  static std::shared_ptr<Buffer> try_make(MemoryBudget& budget, size_t cap) {
    if (!budget.try_acquire(cap)) return nullptr;
    return std::shared_ptr<Buffer>(new Buffer(budget, cap, Charged{}));
  }
  ~Buffer() {
    budget_.give_block(std::move(data_));
    budget_.release(charged_);
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  void grow(size_t cap) {
    if (cap > charged_) {
      budget_.acquire(cap - charged_);
      charged_ = cap;
    }
    data_.resize(cap);
  }
  char* data() { return data_.data(); }
  const std::vector<char>& bytes() const { return data_; }
  size_t size() const { return data_.size(); }
  void truncate(size_t n) { data_.resize(n); }

 private:
  struct Charged {};
  Buffer(MemoryBudget& budget, size_t cap, Charged) : budget_(budget), charged_(cap) { take(cap); }
  void take(size_t cap) {
    data_ = budget_.take_block(cap);
    data_.resize(cap);
  }
  MemoryBudget& budget_;
  size_t charged_;
  std::vector<char> data_;
};

// One part's bytes: a buffer, a range of the source file read as it is sent, or a range of
// an object that the server copies itself (UploadPartCopy).
struct PartBody {
  std::shared_ptr<Buffer> buf;
  std::shared_ptr<Charge> charge;
  int fd = -1;
  const CopySource* copy = nullptr;
  uint64_t offset = 0;
  uint64_t len = 0;
  uint64_t size() const { return buf ? buf->size() : len; }
};
// The next part, or an empty body at the end.
using NextPart = std::function<Result<PartBody>()>;

// Where fetched bytes go: absolute object offset and data.
using RangeWriter = std::function<Status(uint64_t, const char*, size_t)>;

class S3Storage;

class S3File : public RandomAccessFile {
 public:
  S3File(S3Storage* s, std::string key, Head head)
      : storage_(s), key_(std::move(key)), head_(std::move(head)) {}
  uint64_t size() const override { return head_.size; }
  Result<size_t> read_at(uint64_t offset, void* buf, size_t len) override;
  uint64_t bytes_fetched() const override { return fetched_; }

 private:
  struct Block {
    uint64_t start = 0;
    std::string data;
  };
  S3Storage* storage_;
  std::string key_;
  Head head_;
  std::mutex mu_;
  Block blocks_[2];
  unsigned next_block_ = 0;
  std::atomic<uint64_t> fetched_{0};
};

class S3Storage : public Storage {
 public:
  S3Storage(Location loc, StorageOptions opts, EnvFn env, Endpoint ep, bool vhost,
            std::string region, long stall_s, unsigned attempts)
      : loc_(std::move(loc)),
        opts_(std::move(opts)),
        env_(std::move(env)),
        ep_(std::move(ep)),
        vhost_(vhost),
        region_(std::move(region)),
        part_size_(std::max<uint64_t>(opts_.part_size, kMinPartSize)),
        // A test hook: a lower limit sends small copies through the multipart path.
        single_copy_max_(
            std::min<uint64_t>(env_long(env_, "CKPT_S3_SINGLE_COPY_MAX", kMaxCopy), kMaxCopy)),
        workers_(std::max(1u, opts_.parts_in_flight)),
        budget_(part_size_ * workers_),
        http_(RetryPolicy{attempts, 0.1, 5.0}, stall_s, 10),
        creds_([this] { return resolve_credentials(env_, http_, region_); },
               [] { return std::time(nullptr); }) {
    std::string p = loc_.path;
    while (!p.empty() && p.back() == '/') p.pop_back();
    while (!p.empty() && p.front() == '/') p.erase(0, 1);
    prefix_ = p.empty() ? "" : p + "/";
  }

  const Location& location() const override { return loc_; }

  Result<std::vector<ObjectInfo>> list() override {
    std::vector<ObjectInfo> out;
    std::string token;
    do {
      std::vector<std::pair<std::string, std::string>> q = {{"list-type", "2"},
                                                            {"prefix", prefix_}};
      if (!token.empty()) q.emplace_back("continuation-token", token);
      HttpRequest req = request("GET", "", "");
      req.url = object_url(ep_, vhost_, loc_.bucket, "", canonical_query(q));
      req.what = "s3://" + loc_.bucket + "/" + prefix_ + " (list)";
      CKPT_ASSIGN_OR_RETURN(HttpResponse resp, http_.execute(req));
      if (resp.status != 200) return failure(resp, "s3://" + loc_.bucket + "/" + prefix_);
      CKPT_ASSIGN_OR_RETURN(ListPage page, parse_list_objects_v2(resp.body));
      for (auto& e : page.entries) {
        if (e.key.compare(0, prefix_.size(), prefix_) != 0) continue;
        std::string rel = e.key.substr(prefix_.size());
        // Zero-byte "folder" markers that consoles create are not files.
        if (rel.empty() || rel.back() == '/') continue;
        out.push_back({std::move(rel), e.size});
      }
      token = page.truncated ? page.next_token : "";
    } while (!token.empty());
    std::sort(out.begin(), out.end(),
              [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
    return out;
  }

  Result<std::optional<ObjectInfo>> stat(const std::string& key) override {
    CKPT_ASSIGN_OR_RETURN(std::optional<Head> h, head(key));
    if (!h) return std::optional<ObjectInfo>();
    return std::optional<ObjectInfo>(ObjectInfo{key, h->size});
  }

  Status put(const std::string& key, ByteSource& src, const ProgressFn& progress) override {
    auto hint = src.size_hint();
    uint64_t part = part_size_;
    if (hint && *hint / part >= kMaxParts) part = (*hint + kMaxParts - 1) / kMaxParts;
    if (src.fd() >= 0 && hint && *hint > part) return put_file(key, src, *hint, part, progress);
    // Small objects get a buffer of their size (one byte more shows a file that grew).
    uint64_t cap0 = hint && *hint < part ? *hint + 1 : part;
    auto first = std::make_shared<Buffer>(budget_, cap0);
    CKPT_ASSIGN_OR_RETURN(size_t n0, read_full(src, first->data(), cap0));
    if (n0 == cap0 && cap0 < part) {
      first->grow(part);
      CKPT_ASSIGN_OR_RETURN(size_t more, read_full(src, first->data() + n0, part - n0));
      n0 += more;
    }
    first->truncate(n0);
    // Below a full part the source has ended; a full part of a source whose size we know is
    // all there is. Otherwise upload in parts (a stream may end right after the first).
    if (n0 < part || (hint && *hint == n0)) {
      CKPT_RETURN_IF_ERROR(put_single(key, first->data(), first->size()));
      if (progress && n0 > 0) progress(n0);
      return {};
    }
    return put_stream(key, src, part, std::move(first), progress);
  }

  Status get_to_file(const std::string& key, const std::filesystem::path& dst,
                     const ProgressFn& progress) override {
    std::string path = dst.string();
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return errno_status(errno, "open", path);
    RangeWriter write = [&](uint64_t off, const char* data, size_t len) -> Status {
      CKPT_RETURN_IF_ERROR(pwrite_all(fd, off, data, len, path));
      if (progress) progress(len);
      return {};
    };
    Head head;
    Status st = fetch_first(key, write, &head);
    if (st.ok()) st = fetch_rest(key, head, write);
    if (st.ok() && opts_.durable && ::fsync(fd) != 0) st = errno_status(errno, "fsync", path);
    if (::close(fd) != 0 && st.ok()) st = errno_status(errno, "close", path);
    return st;
  }

  Status get_to_sink(const std::string& key, ByteSink& sink, const ProgressFn& progress) override {
    uint64_t emitted = 0;
    RangeWriter direct = [&](uint64_t off, const char* data, size_t len) -> Status {
      if (off != emitted) return Status(Errc::kInternal, "out-of-order S3 data");
      CKPT_RETURN_IF_ERROR(sink.write(data, len));
      emitted += len;
      if (progress) progress(len);
      return {};
    };
    Head head;
    CKPT_RETURN_IF_ERROR(fetch_first(key, direct, &head));
    if (head.size <= part_size_) return {};
    int fd = sink.fd();
    if (fd >= 0 && (::fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR) {
      // A file we may read back: the rest lands in place from parallel ranges (no part
      // buffers, no in-order wait), then the sink sees it in order from the page cache.
      const off_t pos = ::lseek(fd, 0, SEEK_CUR);
      if (pos >= 0)
        return get_in_place(key, head, fd, static_cast<uint64_t>(pos) - emitted, sink, progress);
    }
    // The rest: a window of parts_in_flight buffered ranges, handed to the sink in order.
    using Part = std::pair<Status, std::shared_ptr<Buffer>>;
    std::deque<std::future<Part>> window;
    uint64_t next = part_size_;
    Status failed;
    // Buffers leave the window only through this thread, so while it holds some it must not
    // wait for more (transfers in parallel would deadlock on the shared budget).
    auto launch = [&]() -> bool {
      uint64_t start = next;
      uint64_t len = std::min(part_size_, head.size - start);
      auto buf =
          window.empty() ? std::make_shared<Buffer>(budget_, len) : Buffer::try_make(budget_, len);
      if (!buf) return false;
      next += len;
      window.push_back(std::async(std::launch::async, [this, key, start, len, buf,
                                                       etag = head.etag] {
        Status st = fetch_range(key, start, len, etag, [&](uint64_t off, const char* d, size_t n) {
          std::memcpy(buf->data() + (off - start), d, n);
          return Status();
        });
        return Part(std::move(st), buf);
      }));
      return true;
    };
    auto fill = [&] {
      while (failed.ok() && next < head.size && window.size() < workers_ && launch()) {
      }
    };
    fill();
    while (!window.empty()) {
      Part p = window.front().get();
      window.pop_front();
      if (failed.ok() && !p.first.ok()) failed = p.first;
      if (failed.ok()) {
        failed = sink.write(p.second->data(), p.second->size());
        if (progress && failed.ok()) progress(p.second->size());
      }
      p.second.reset();
      fill();
    }
    return failed;
  }

  // Parallel ranged GETs of everything after the first part.
  Status fetch_rest(const std::string& key, const Head& head, const RangeWriter& write) {
    if (head.size <= part_size_) return {};
    uint64_t rest = head.size - part_size_;
    size_t parts = static_cast<size_t>((rest + part_size_ - 1) / part_size_);
    return run_parallel(parts, workers_, [&](size_t i) {
      uint64_t start = part_size_ * (i + 1);
      return fetch_range(key, start, std::min(part_size_, head.size - start), head.etag, write);
    });
  }

  Status get_in_place(const std::string& key, const Head& head, int fd, uint64_t base,
                      ByteSink& sink, const ProgressFn& progress) {
    const std::string what = uri(key);
    RangeWriter write = [&](uint64_t off, const char* data, size_t len) -> Status {
      CKPT_RETURN_IF_ERROR(pwrite_all(fd, base + off, data, len, what));
      if (progress) progress(len);
      return {};
    };
    CKPT_RETURN_IF_ERROR(fetch_rest(key, head, write));
    std::unique_ptr<char[]> buf(new char[kCopyBufferSize]);
    CKPT_RETURN_IF_ERROR(read_range(fd, base + part_size_, head.size - part_size_, buf.get(),
                                    kCopyBufferSize, what,
                                    [&](const void* d, size_t n) { sink.copied(d, n); }));
    if (::lseek(fd, static_cast<off_t>(base + head.size), SEEK_SET) < 0)
      return errno_status(errno, "cannot seek", what);
    return {};
  }

  Result<std::unique_ptr<RandomAccessFile>> open(const std::string& key) override {
    CKPT_ASSIGN_OR_RETURN(std::optional<Head> h, head(key));
    if (!h) return Status(Errc::kNotFound, uri(key) + ": not found");
    return std::unique_ptr<RandomAccessFile>(new S3File(this, key, std::move(*h)));
  }

  Status remove(const std::string& key) override {
    HttpRequest req = request("DELETE", key, "");
    CKPT_ASSIGN_OR_RETURN(HttpResponse resp, http_.execute(req));
    if (resp.status == 200 || resp.status == 204 || resp.status == 404) return {};
    return failure(resp, uri(key));
  }

  Status copy_from(Storage& from, const std::string& from_key, const std::string& key) override {
    auto* src = dynamic_cast<S3Storage*>(&from);
    // The server can only copy what it serves itself; anything else the caller streams.
    if (!src || src->ep_.scheme != ep_.scheme || src->ep_.host != ep_.host)
      return Status(Errc::kUnsupported,
                    "no server-side copy from " + from.uri_of(from_key) + " to " + uri(key));
    // The size picks CopyObject or a multipart copy (HEAD also names a missing source, where
    // a failed copy could mean either side).
    CKPT_ASSIGN_OR_RETURN(std::optional<Head> h, src->head(from_key));
    if (!h) return Status(Errc::kNotFound, src->uri(from_key) + ": not found");
    // S3 refuses to copy an object onto itself, which is there already anyway.
    if (src->loc_.bucket == loc_.bucket && src->prefix_ + from_key == prefix_ + key) return {};
    CopySource source{copy_source(src->loc_.bucket, src->prefix_ + from_key), h->etag,
                      src->uri(from_key)};
    if (h->size <= single_copy_max_) return copy_single(key, source);
    // radosgw 16 decodes UploadPartCopy's source twice and ignores its If-Match: a key with a
    // '%' got another object's bytes, or aborted the gateway. The caller streams those.
    if (source.header.find("%25") != std::string::npos)
      return Status(Errc::kUnsupported,
                    "no multipart server-side copy of " + source.uri + " (its key has a '%')");
    uint64_t part = std::min(part_size_, kMaxCopy);
    if (h->size / part >= kMaxParts) part = (h->size + kMaxParts - 1) / kMaxParts;
    uint64_t next_off = 0;
    NextPart next = [&, size = h->size]() -> Result<PartBody> {
      PartBody body;
      if (next_off < size) {
        body.copy = &source;
        body.offset = next_off;
        body.len = std::min(part, size - next_off);
        next_off += body.len;
      }
      return body;
    };
    return put_multipart(key, next, nullptr);
  }

  // Reads [start, start+len) into write, resuming after the bytes already received when an
  // attempt fails midway; the ETag pins every range to the same object version.
  Status fetch_range(const std::string& key, uint64_t start, uint64_t len, const std::string& etag,
                     const RangeWriter& write) {
    if (len == 0) return {};
    uint64_t got = 0;
    HttpRequest req = request("GET", key, "");
    req.attempt_headers = [&] {
      std::vector<std::string> h = {"Range: bytes=" + std::to_string(start + got) + "-" +
                                    std::to_string(start + len - 1)};
      if (!etag.empty()) h.push_back("If-Match: " + etag);
      return h;
    };
    req.on_data = [&](const char* d, size_t n) -> Status {
      if (got + n > len) return Status(Errc::kUnavailable, uri(key) + ": more bytes than asked");
      CKPT_RETURN_IF_ERROR(write(start + got, d, n));
      got += n;
      return {};
    };
    req.on_headers = [&](long status, const std::map<std::string, std::string>&) {
      // A server that ignores Range would send the object from its start.
      if (status != 206 && start + got != 0) got = len + 1;
    };
    CKPT_ASSIGN_OR_RETURN(HttpResponse resp, http_.execute(req));
    if (resp.status != 206 && resp.status != 200) return failure(resp, uri(key));
    if (got != len)
      return Status(Errc::kUnavailable, uri(key) + ": the server sent " + std::to_string(got) +
                                            " bytes of a " + std::to_string(len) + "-byte range");
    return {};
  }

  Result<std::optional<Head>> head(const std::string& key) {
    HttpRequest req = request("HEAD", key, "");
    CKPT_ASSIGN_OR_RETURN(HttpResponse resp, http_.execute(req));
    if (resp.status == 404) return std::optional<Head>();
    if (resp.status != 200) return failure(resp, uri(key));
    Head h;
    h.size = std::strtoull(resp.header("content-length").c_str(), nullptr, 10);
    h.etag = resp.header("etag");
    return std::optional<Head>(std::move(h));
  }

  std::string uri(const std::string& key) const {
    return "s3://" + loc_.bucket + "/" + prefix_ + key;
  }

 private:
  HttpRequest request(const std::string& method, const std::string& key, const std::string& query) {
    HttpRequest req;
    req.method = method;
    req.url = object_url(ep_, vhost_, loc_.bucket, prefix_ + key, query);
    req.region = region_;
    req.credentials = [this] { return creds(); };
    req.credentials_expired = [this] { creds_.invalidate(); };
    req.what = uri(key);
    return req;
  }

  Result<Credentials> creds() {
    auto c = creds_.get();
    if (c.ok()) {
      std::lock_guard<std::mutex> lock(source_mu_);
      source_ = c->source;
    }
    return c;
  }

  Status failure(const HttpResponse& resp, const std::string& what) {
    Status st = http_failure_status(resp.status, parse_error(resp.body), what);
    if (st.code() == Errc::kPermissionDenied) {
      std::lock_guard<std::mutex> lock(source_mu_);
      if (!source_.empty())
        return Status(st.code(), st.message() + " (credentials from " + source_ + ")");
    }
    return st;
  }

  // GETs the first part without knowing the size; the answer's Content-Range tells it.
  Status fetch_first(const std::string& key, const RangeWriter& write, Head* head) {
    uint64_t got = 0;
    std::optional<uint64_t> total;
    std::string etag;
    HttpRequest req = request("GET", key, "");
    req.attempt_headers = [&] {
      uint64_t end = (total ? std::min(*total, part_size_) : part_size_) - 1;
      std::vector<std::string> h = {"Range: bytes=" + std::to_string(got) + "-" +
                                    std::to_string(end)};
      if (!etag.empty()) h.push_back("If-Match: " + etag);
      return h;
    };
    req.on_headers = [&](long status, const std::map<std::string, std::string>& h) {
      auto it = h.find("etag");
      if (etag.empty() && it != h.end()) etag = it->second;
      if (status == 206) {
        auto cr = h.find("content-range");
        if (cr != h.end() && !total) total = range_total(cr->second);
      } else if (status == 200 && !total && got == 0) {
        auto cl = h.find("content-length");
        if (cl != h.end()) total = std::strtoull(cl->second.c_str(), nullptr, 10);
      }
    };
    req.on_data = [&](const char* d, size_t n) -> Status {
      if (!total) return Status(Errc::kUnavailable, uri(key) + ": no Content-Range in the answer");
      if (got + n > std::min(*total, part_size_))
        return Status(Errc::kUnavailable, uri(key) + ": more bytes than asked");
      CKPT_RETURN_IF_ERROR(write(got, d, n));
      got += n;
      return {};
    };
    CKPT_ASSIGN_OR_RETURN(HttpResponse resp, http_.execute(req));
    if (resp.status == 416) {
      // An empty object has no byte 0; confirm it is really there and empty.
      CKPT_ASSIGN_OR_RETURN(std::optional<Head> h, this->head(key));
      if (!h) return Status(Errc::kNotFound, uri(key) + ": not found");
      if (h->size != 0)
        return Status(Errc::kUnavailable, uri(key) + ": the server refused a valid range");
      *head = *h;
      return {};
    }
    if (resp.status != 206 && resp.status != 200) return failure(resp, uri(key));
    if (!total) {  // an empty body never reached on_headers
      std::string cr = resp.header("content-range");
      total = resp.status == 206 ? range_total(cr)
                                 : std::optional<uint64_t>(std::strtoull(
                                       resp.header("content-length").c_str(), nullptr, 10));
      if (!total) return Status(Errc::kUnavailable, uri(key) + ": no size in the answer");
      if (etag.empty()) etag = resp.header("etag");
    }
    if (got != std::min(*total, part_size_))
      return Status(Errc::kUnavailable,
                    uri(key) + ": short answer (" + std::to_string(got) + " bytes)");
    head->size = *total;
    head->etag = etag;
    return {};
  }

  Status put_single(const std::string& key, const char* data, size_t len) {
    HttpRequest req = request("PUT", key, "");
    req.body = data;
    req.body_len = len;
    CKPT_ASSIGN_OR_RETURN(HttpResponse resp, http_.execute(req));
    if (resp.status != 200) return failure(resp, uri(key));
    return {};
  }

  Status copy_single(const std::string& key, const CopySource& src) {
    HttpRequest req = request("PUT", key, "");
    req.what = uri(key) + " (copy of " + src.uri + ")";
    req.headers = copy_headers(src);
    CKPT_ASSIGN_OR_RETURN(HttpResponse resp, execute_copy(req));
    if (resp.status != 200 || parse_error(resp.body)) return copy_failure(resp, req.what, src);
    return {};
  }

  Result<std::string> copy_part(const std::string& key, const std::string& upload_id, size_t number,
                                const PartBody& body) {
    HttpRequest req =
        request("PUT", key,
                canonical_query({{"partNumber", std::to_string(number)}, {"uploadId", upload_id}}));
    req.what = uri(key) + " part " + std::to_string(number) + " (copy of " + body.copy->uri + ")";
    req.headers = copy_headers(*body.copy);
    req.headers.push_back("x-amz-copy-source-range: bytes=" + std::to_string(body.offset) + "-" +
                          std::to_string(body.offset + body.len - 1));
    CKPT_ASSIGN_OR_RETURN(HttpResponse resp, execute_copy(req));
    if (resp.status != 200 || parse_error(resp.body))
      return copy_failure(resp, req.what, *body.copy);
    auto etag = parse_copy_result(resp.body);
    if (!etag.ok()) return Status(Errc::kUnavailable, req.what + ": " + etag.status().message());
    return etag;
  }

  // Signed with the rest, as S3 wants every x-amz-* header (these by sigv4.h: curl would
  // misorder them).
  static std::vector<std::string> copy_headers(const CopySource& src) {
    std::vector<std::string> h = {"x-amz-copy-source: " + src.header};
    if (!src.etag.empty()) h.push_back("x-amz-copy-source-if-match: " + src.etag);
    return h;
  }

  // CopyObject and UploadPartCopy answer 200 before they copy, so a failure midway comes as
  // an <Error> document in that 200 answer: retried here like a failed status would be.
  Result<HttpResponse> execute_copy(const HttpRequest& req) {
    const RetryPolicy& policy = http_.policy();
    for (unsigned attempt = 1;; ++attempt) {
      CKPT_ASSIGN_OR_RETURN(HttpResponse resp, http_.execute(req));
      auto err = resp.status == 200 ? parse_error(resp.body) : std::nullopt;
      if (!err || !retryable_http(resp.status, err->code) || attempt >= policy.max_attempts)
        return resp;
      double delay = policy.delay_s(attempt - 1, jitter_unit());
      spdlog::debug("s3: retrying {} in {:.2f} s after: HTTP 200 {}", req.what, delay, err->code);
      std::this_thread::sleep_for(std::chrono::duration<double>(delay));
    }
  }

  Status copy_failure(const HttpResponse& resp, const std::string& what, const CopySource& src) {
    auto err = parse_error(resp.body);
    // The source vanished after we looked (a missing destination bucket is NoSuchBucket).
    if (err && err->code == "NoSuchKey")
      return Status(Errc::kNotFound, src.uri + ": not found (" + what + ")");
    if (resp.status == 412)
      return Status(Errc::kFailedPrecondition,
                    src.uri + ": changed during the copy (" + what + ")");
    return failure(resp, what);
  }

  Result<std::string> upload_part(const std::string& key, const std::string& upload_id,
                                  size_t number, const PartBody& body) {
    if (body.copy) return copy_part(key, upload_id, number, body);
    HttpRequest req =
        request("PUT", key,
                canonical_query({{"partNumber", std::to_string(number)}, {"uploadId", upload_id}}));
    req.what = uri(key) + " part " + std::to_string(number);
    if (body.buf) {
      req.body = body.buf->data();
    } else {
      req.body_fd = body.fd;
      req.body_offset = body.offset;
    }
    req.body_len = static_cast<size_t>(body.size());
    CKPT_ASSIGN_OR_RETURN(HttpResponse resp, http_.execute(req));
    if (resp.status != 200) return failure(resp, req.what);
    std::string etag = resp.header("etag");
    if (etag.empty()) return Status(Errc::kUnavailable, req.what + ": no ETag in the answer");
    return etag;
  }

  void abort_upload(const std::string& key, const std::string& upload_id) {
    // Tried harder than other requests: a leftover upload keeps its parts (and costs) forever.
    for (unsigned attempt = 0; attempt < 3; ++attempt) {
      HttpRequest req = request("DELETE", key, canonical_query({{"uploadId", upload_id}}));
      req.what = uri(key) + " (abort multipart upload)";
      auto resp = http_.execute(req);
      if (resp.ok() && (resp->status == 204 || resp->status == 200 || resp->status == 404)) return;
    }
    spdlog::warn(
        "could not abort the multipart upload of {} (upload id {}); a lifecycle rule "
        "may be needed to remove its parts",
        uri(key), upload_id);
  }

  // A retried CreateMultipartUpload may have started uploads whose answers were lost; they
  // are invisible to us but keep their parts forever. Abort the ones on this key begun since
  // `since` (minus clock skew): a concurrent writer of the very same key is already a race.
  void abort_orphans(const std::string& key, const std::string& ours, std::time_t since) {
    HttpRequest req = request("GET", "", "");
    req.url = object_url(ep_, vhost_, loc_.bucket, "",
                         canonical_query({{"uploads", ""}, {"prefix", prefix_ + key}}));
    req.what = uri(key) + " (list multipart uploads)";
    auto resp = http_.execute(req);
    if (!resp.ok() || resp->status != 200) return;
    auto uploads = parse_list_multipart_uploads(resp->body);
    if (!uploads.ok()) return;
    constexpr std::time_t kSkew = 300;
    for (const auto& u : *uploads) {
      if (u.key != prefix_ + key || u.upload_id == ours) continue;
      if (!u.initiated || *u.initiated + kSkew < since) continue;
      spdlog::debug("s3: aborting upload {} of {} left by a retried start", u.upload_id, uri(key));
      abort_upload(key, u.upload_id);
    }
  }

  Status complete_upload(const std::string& key, const std::string& upload_id,
                         const std::vector<std::string>& etags, uint64_t total) {
    std::string body = complete_multipart_body(etags);
    Status last;
    for (unsigned attempt = 0; attempt < 3; ++attempt) {
      HttpRequest req = request("POST", key, canonical_query({{"uploadId", upload_id}}));
      req.what = uri(key) + " (complete multipart upload)";
      req.headers = {"Content-Type: application/xml"};
      req.body = body.data();
      req.body_len = body.size();
      auto resp = http_.execute(req);
      if (!resp.ok()) {
        last = resp.status();
        continue;
      }
      auto err = parse_error(resp->body);
      if (resp->status == 200 && !err) return {};
      // The first attempt may have succeeded with its answer lost: then the upload id is
      // gone and the object has the size we sent.
      if (attempt > 0 && err && err->code == "NoSuchUpload") {
        CKPT_ASSIGN_OR_RETURN(std::optional<Head> h, head(key));
        if (h && h->size == total) return {};
      }
      last = failure(*resp, req.what);
      if (!retryable_http(resp->status == 200 ? 500 : resp->status, err ? err->code : "")) break;
    }
    return last;
  }

  // A stream (or a file without a descriptor) in parts read into buffers.
  Status put_stream(const std::string& key, ByteSource& src, uint64_t part,
                    std::shared_ptr<Buffer> first, const ProgressFn& progress) {
    bool ended = false;
    NextPart next = [&]() -> Result<PartBody> {
      PartBody body;
      if (first) {
        body.buf = std::move(first);
        return body;
      }
      if (ended) return body;
      auto buf = std::make_shared<Buffer>(budget_, part);
      CKPT_ASSIGN_OR_RETURN(size_t n, read_full(src, buf->data(), part));
      buf->truncate(n);
      ended = n < part;
      if (n > 0) body.buf = std::move(buf);
      return body;
    };
    return put_multipart(key, next, progress);
  }

  // A regular file of known size in parts read straight from it by offset as curl sends them
  // (no part buffers: the copy into curl's buffer is the only one, and 512 MiB went up with
  // 30% less CPU). This thread meanwhile reads the file in order for the source's hash.
  Status put_file(const std::string& key, ByteSource& src, uint64_t size, uint64_t part,
                  const ProgressFn& progress) {
    const int fd = src.fd();
    const off_t start = ::lseek(fd, 0, SEEK_CUR);
    if (start < 0) return errno_status(errno, "cannot seek the upload of", uri(key));
    std::unique_ptr<char[]> hbuf(new char[kCopyBufferSize]);
    const std::string source = "the source file of " + uri(key);
    // Each part is hashed right after it was handed to a worker, while it goes up: everything
    // before next_off has been handed out, everything before `hashed` hashed.
    uint64_t next_off = 0, hashed = 0;
    NextPart next = [&]() -> Result<PartBody> {
      CKPT_RETURN_IF_ERROR(read_range(fd, static_cast<uint64_t>(start) + hashed, next_off - hashed,
                                      hbuf.get(), kCopyBufferSize, source,
                                      [&](const void* d, size_t n) { src.copied(d, n); }));
      hashed = next_off;
      PartBody body;
      if (next_off < size) {
        body.fd = fd;
        body.offset = static_cast<uint64_t>(start) + next_off;
        body.len = std::min(part, size - next_off);
        body.charge = std::make_shared<Charge>(budget_, body.len);
        next_off += body.len;
      }
      return body;
    };
    auto grew = [&]() -> Status {
      char c;
      ssize_t n = ::pread(fd, &c, 1, static_cast<off_t>(start + size));
      if (n > 0) return Status(Errc::kIo, uri(key) + ": the source file grew during the upload");
      return {};
    };
    CKPT_RETURN_IF_ERROR(put_multipart(key, next, progress, grew));
    if (::lseek(fd, static_cast<off_t>(start + size), SEEK_SET) < 0)
      return errno_status(errno, "cannot seek the upload of", uri(key));
    return {};
  }

  // Parts from `next` go up parts_in_flight at a time; the upload is completed only when
  // every part and `before_complete` succeeded, and aborted otherwise.
  Status put_multipart(const std::string& key, const NextPart& next, const ProgressFn& progress,
                       const std::function<Status()>& before_complete = nullptr) {
    HttpRequest init = request("POST", key, canonical_query({{"uploads", ""}}));
    init.what = uri(key) + " (start multipart upload)";
    std::time_t since = std::time(nullptr);
    CKPT_ASSIGN_OR_RETURN(HttpResponse resp, http_.execute(init));
    if (resp.status != 200) return failure(resp, init.what);
    CKPT_ASSIGN_OR_RETURN(std::string upload_id, parse_initiate_multipart(resp.body));
    struct OrphanGuard {
      std::function<void()> fn;
      ~OrphanGuard() {
        if (fn) fn();
      }
    } orphans;
    if (resp.attempts > 1) orphans.fn = [&] { abort_orphans(key, upload_id, since); };
    spdlog::debug("s3: multipart upload of {} started", uri(key));

    std::deque<std::future<Result<std::string>>> window;
    std::vector<std::string> etags;
    Status failed;
    uint64_t total = 0;
    size_t number = 0;
    auto drain_one = [&] {
      auto r = window.front().get();
      window.pop_front();
      if (!r.ok()) {
        if (failed.ok()) failed = r.status();
      } else {
        etags.push_back(std::move(r).value());
      }
    };
    for (;;) {
      while (failed.ok() && window.size() >= workers_) drain_one();
      if (!failed.ok()) break;
      auto body = next();
      if (!body.ok()) {
        failed = body.status();
        break;
      }
      if (body->size() == 0) break;
      if (number >= kMaxParts) {
        failed =
            Status(Errc::kUnsupported, uri(key) + ": more than 10000 parts; raise the part size");
        break;
      }
      ++number;
      total += body->size();
      window.push_back(std::async(std::launch::async, [this, &key, &upload_id, &progress, number,
                                                       body = std::move(body).value()]() mutable {
        auto r = upload_part(key, upload_id, number, body);
        uint64_t n = body.size();
        body = PartBody();  // back to the budget now, not when the window drains
        if (r.ok() && progress) progress(n);
        return r;
      }));
    }
    while (!window.empty()) drain_one();
    if (failed.ok() && before_complete) failed = before_complete();
    if (failed.ok()) failed = complete_upload(key, upload_id, etags, total);
    if (!failed.ok()) {
      abort_upload(key, upload_id);
      return failed;
    }
    return {};
  }

  Location loc_;
  StorageOptions opts_;
  EnvFn env_;
  Endpoint ep_;
  bool vhost_;
  std::string region_;
  std::string prefix_;
  uint64_t part_size_;
  uint64_t single_copy_max_;
  unsigned workers_;
  MemoryBudget budget_;
  HttpClient http_;
  CredentialCache creds_;
  std::mutex source_mu_;
  std::string source_;

  friend class S3File;
};

Result<size_t> S3File::read_at(uint64_t offset, void* buf, size_t len) {
  if (offset >= head_.size || len == 0) return size_t{0};
  len = static_cast<size_t>(std::min<uint64_t>(len, head_.size - offset));
  std::lock_guard<std::mutex> lock(mu_);
  for (const Block& b : blocks_) {
    if (offset >= b.start && offset + len <= b.start + b.data.size()) {
      std::memcpy(buf, b.data.data() + (offset - b.start), len);
      return len;
    }
  }
  if (len >= kReadAhead) {  // big reads go straight to the caller's buffer
    auto* out = static_cast<char*>(buf);
    CKPT_RETURN_IF_ERROR(storage_->fetch_range(key_, offset, len, head_.etag,
                                               [&](uint64_t off, const char* d, size_t n) {
                                                 std::memcpy(out + (off - offset), d, n);
                                                 return Status();
                                               }));
    fetched_ += len;
    return len;
  }
  uint64_t want = std::min<uint64_t>(kReadAhead, head_.size - offset);
  Block& b = blocks_[next_block_];
  next_block_ ^= 1;
  b.start = offset;
  b.data.clear();
  Status st =
      storage_->fetch_range(key_, offset, want, head_.etag, [&](uint64_t, const char* d, size_t n) {
        b.data.append(d, n);
        return Status();
      });
  if (!st.ok()) {
    b.data.clear();
    return st;
  }
  fetched_ += want;
  std::memcpy(buf, b.data.data(), len);
  return len;
}

Result<std::unique_ptr<Storage>> open_s3(const Location& loc, const StorageOptions& opts,
                                         EnvFn env) {
  if (loc.bucket.empty())
    return Status(Errc::kInvalidArgument, "S3 location '" + loc.uri + "' has no bucket");
  std::string region = resolve_region(env, opts.region);
  std::string ep_url =
      opts.endpoint.empty()
          ? first_set(env, {"FLYTE_AWS_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"})
          : opts.endpoint;
  Endpoint ep;
  if (ep_url.empty()) {
    ep = aws_endpoint(region);
  } else {
    CKPT_ASSIGN_OR_RETURN(ep, parse_endpoint(ep_url));
  }
  CKPT_ASSIGN_OR_RETURN(Addressing style,
                        parse_addressing(first_set(
                            env, {"FLYTE_AWS_ADDRESSING_STYLE", "FLYTE_AWS_S3_ADDRESSING_STYLE"})));
  bool vhost = use_virtual_host(style, ep, loc.bucket);
  long stall = env_long(env, "CKPT_S3_STALL_TIMEOUT", 30);
  auto attempts = static_cast<unsigned>(env_long(env, "CKPT_S3_MAX_ATTEMPTS", 6));
  spdlog::debug("s3: {} via {}://{} ({}-style, region {})", loc.uri, ep.scheme, ep.host,
                vhost ? "virtual-hosted" : "path", region);
  return std::unique_ptr<Storage>(
      new S3Storage(loc, opts, std::move(env), ep, vhost, region, stall, attempts));
}

}  // namespace
}  // namespace ckpt::s3

extern "C" __attribute__((visibility("default"))) ckpt::Storage* ckpt_open_storage(
    const ckpt::Location* loc, const ckpt::StorageOptions* opts, ckpt::Status* status) {
  auto r = ckpt::s3::open_s3(*loc, *opts, ckpt::s3::process_env());
  if (!r.ok()) {
    if (status) *status = r.status();
    return nullptr;
  }
  return std::move(r).value().release();
}
