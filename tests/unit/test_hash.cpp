#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "ckpt/hash.h"
#include "ckpt/io.h"

using namespace ckpt;

namespace {
std::string hash_of(const std::string& bytes) {
  Hasher h;
  h.update(bytes.data(), bytes.size());
  return h.hex_digest();
}
}  // namespace

TEST_CASE("hash_file equals hashing the bytes at once, across buffer boundaries") {
  char tmpl[] = "/tmp/ckpt-hash-XXXXXX";
  int fd = ::mkstemp(tmpl);
  REQUIRE(fd >= 0);
  ::close(fd);
  // Sizes around the read buffer: empty, one byte, exactly one buffer, several and a tail.
  for (size_t size : {size_t(0), size_t(1), kCopyBufferSize, 3 * kCopyBufferSize + 17}) {
    std::string bytes(size, '\0');
    for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<char>((i * 2654435761u) >> 13);
    std::ofstream(tmpl, std::ios::binary | std::ios::trunc) << bytes;
    uint64_t got_size = 7;
    auto digest = hash_file(tmpl, &got_size);
    REQUIRE(digest.ok());
    CHECK(*digest == hash_of(bytes));
    CHECK(got_size == size);
  }
  // Split updates give the same digest as one.
  Hasher a;
  a.update("hello ", 6);
  a.update("world", 5);
  CHECK(a.hex_digest() == hash_of("hello world"));
  CHECK(hash_of("hello world") != hash_of("hello world!"));
  ::unlink(tmpl);
  CHECK_FALSE(hash_file(tmpl).ok());
}

TEST_CASE("read_range hands over exactly its range in order, and names a file that ended early") {
  char tmpl[] = "/tmp/ckpt-range-XXXXXX";
  int fd = ::mkstemp(tmpl);
  REQUIRE(fd >= 0);
  std::string bytes(1000, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7);
  REQUIRE(write_all(fd, bytes.data(), bytes.size(), tmpl).ok());
  char buf[64];  // smaller than the range: many reads through the same buffer
  std::string got;
  auto append = [&](const void* d, size_t n) { got.append(static_cast<const char*>(d), n); };
  CHECK(read_range(fd, 100, 850, buf, sizeof buf, "f", append).ok());
  CHECK(got == bytes.substr(100, 850));
  got.clear();
  Status st = read_range(fd, 900, 200, buf, sizeof buf, "the file", append);
  CHECK(st.code() == Errc::kIo);
  CHECK(st.message().find("the file shrank") != std::string::npos);
  CHECK(got == bytes.substr(900));
  ::close(fd);
  ::unlink(tmpl);
}
