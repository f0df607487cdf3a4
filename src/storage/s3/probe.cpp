// ckpt-s3-probe: drives the s3 plugin's Storage interface directly (tests and debugging),
// loading ckpt-s3.so the way the ckpt binary does.
//   ckpt-s3-probe put ROOT KEY FILE|-     ckpt-s3-probe get ROOT KEY FILE
//   ckpt-s3-probe cat ROOT KEY             ckpt-s3-probe ls ROOT
//   ckpt-s3-probe stat ROOT KEY            ckpt-s3-probe rm ROOT KEY
//   ckpt-s3-probe range ROOT KEY OFFSET LEN   (bytes to stdout, bytes fetched to stderr)
//   ckpt-s3-probe creds                    (credential source and access key id, never secrets)
// Environment: CKPT_PART_SIZE, CKPT_PARTS_IN_FLIGHT, CKPT_ENDPOINT, CKPT_VERBOSE=1.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <vector>

#include "ckpt/storage.h"
#include "ckpt/uri.h"
#include "storage/s3/credentials.h"

using namespace ckpt;

namespace {

class FdSource : public ByteSource {
 public:
  explicit FdSource(int fd) : fd_(fd) {}
  Result<size_t> read(void* buf, size_t len) override {
    for (;;) {
      ssize_t n = ::read(fd_, buf, len);
      if (n >= 0) return static_cast<size_t>(n);
      if (errno != EINTR) return errno_status(errno, "read", "input");
    }
  }

 private:
  int fd_;
};

class StdoutSink : public ByteSink {
 public:
  Status write(const void* buf, size_t len) override {
    if (std::fwrite(buf, 1, len, stdout) != len) return Status(Errc::kIo, "stdout write failed");
    return {};
  }
};

int fail(const Status& st) {
  std::fprintf(stderr, "error [%s]: %s\n", std::string(errc_name(st.code())).c_str(),
               st.message().c_str());
  return st.code() == Errc::kNotFound ? 4 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (const char* v = std::getenv("CKPT_VERBOSE"); v && *v == '1')
    spdlog::set_level(spdlog::level::debug);
  spdlog::set_pattern("%v");
  if (argc < 2) {
    std::fprintf(stderr, "usage: ckpt-s3-probe put|get|cat|ls|stat|rm|range|creds ...\n");
    return 2;
  }
  std::string cmd = argv[1];
  if (cmd == "creds") {
    auto env = s3::process_env();
    s3::HttpClient http(s3::RetryPolicy{3, 0.05, 1.0}, 10, 5);
    std::string region = s3::resolve_region(env, "");
    auto c = s3::resolve_credentials(env, http, region);
    if (!c.ok()) return fail(c.status());
    std::printf("source=%s\naccess_key=%s\nsession_token=%s\nexpires=%ld\nregion=%s\n",
                c->source.c_str(), c->access_key.c_str(), c->session_token.empty() ? "no" : "yes",
                c->expiration ? static_cast<long>(*c->expiration) : 0L, region.c_str());
    return 0;
  }
  if (argc < 3) return 2;
  auto loc = parse_location(argv[2]);
  if (!loc.ok()) return fail(loc.status());
  StorageOptions opts;
  if (const char* v = std::getenv("CKPT_PART_SIZE")) opts.part_size = std::strtoull(v, nullptr, 10);
  if (const char* v = std::getenv("CKPT_PARTS_IN_FLIGHT")) opts.parts_in_flight = std::atoi(v);
  if (const char* v = std::getenv("CKPT_ENDPOINT")) opts.endpoint = v;
  auto storage = open_storage(*loc, opts);
  if (!storage.ok()) return fail(storage.status());
  Storage& s = **storage;
  std::string key = argc > 3 ? argv[3] : "";
  Status st;
  if (cmd == "put" && argc == 5) {
    std::string path = argv[4];
    int fd = path == "-" ? 0 : ::open(path.c_str(), O_RDONLY);
    if (fd < 0) return fail(errno_status(errno, "open", path));
    FdSource src(fd);
    st = s.put(key, src, nullptr);
  } else if (cmd == "get" && argc == 5) {
    st = s.get_to_file(key, argv[4], nullptr);
  } else if (cmd == "cat" && argc == 4) {
    StdoutSink sink;
    st = s.get_to_sink(key, sink, nullptr);
  } else if (cmd == "ls" && argc == 3) {
    auto l = s.list();
    if (!l.ok()) return fail(l.status());
    for (const auto& o : *l)
      std::printf("%llu\t%s\n", static_cast<unsigned long long>(o.size), o.key.c_str());
  } else if (cmd == "stat" && argc == 4) {
    auto r = s.stat(key);
    if (!r.ok()) return fail(r.status());
    if (!r->has_value()) {
      std::printf("missing\n");
      return 4;
    }
    std::printf("%llu\n", static_cast<unsigned long long>((*r)->size));
  } else if (cmd == "rm" && argc == 4) {
    st = s.remove(key);
  } else if (cmd == "range" && argc == 6) {
    auto f = s.open(key);
    if (!f.ok()) return fail(f.status());
    uint64_t off = std::strtoull(argv[4], nullptr, 10);
    size_t len = std::strtoull(argv[5], nullptr, 10);
    std::vector<char> buf(len);
    auto n = (*f)->read_at(off, buf.data(), len);
    if (!n.ok()) return fail(n.status());
    std::fwrite(buf.data(), 1, *n, stdout);
    std::fprintf(stderr, "fetched=%llu size=%llu\n",
                 static_cast<unsigned long long>((*f)->bytes_fetched()),
                 static_cast<unsigned long long>((*f)->size()));
  } else {
    std::fprintf(stderr, "bad arguments\n");
    return 2;
  }
  if (!st.ok()) return fail(st);
  return 0;
}
