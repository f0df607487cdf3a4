#include <doctest/doctest.h>

#include "ckpt/io.h"
#include "ckpt/torch/zip.h"
#include "mem_file.h"

using namespace ckpt;
using namespace ckpt::torch;

namespace {

std::string make_archive(const std::vector<std::pair<std::string, std::string>>& records) {
  StringSink sink;
  ZipWriter w(sink);
  for (const auto& [name, data] : records) REQUIRE(w.add(name, data).ok());
  REQUIRE(w.finish().ok());
  return sink.data();
}

const std::vector<std::pair<std::string, std::string>> kRecords = {
    {"model/data.pkl", std::string("\x80\x02}q\x00.", 6)},
    {"model/data/0", std::string(1 << 20, 'x')},
    {"model/data/1", ""},
    {"model/version", "3\n"},
};

}  // namespace

TEST_CASE("zip: written records read back, 64-byte aligned, mapped or not") {
  std::string zip = make_archive(kRecords);
  for (bool mapped : {true, false}) {
    MemFile f(zip, mapped);
    auto r = ZipReader::open(f);
    REQUIRE(r.ok());
    REQUIRE(r->entries().size() == kRecords.size());
    for (const auto& [name, data] : kRecords) {
      const ZipEntry* e = r->find(name);
      REQUIRE(e);
      CHECK(e->size == data.size());
      auto off = r->data_offset(*e);
      REQUIRE(off.ok());
      CHECK(*off % 64 == 0);
      auto got = r->read(*e, 1 << 30);
      REQUIRE(got.ok());
      CHECK(*got == data);
    }
  }
}

TEST_CASE("zip: opening reads only the tail, never record data") {
  std::string zip = make_archive({{"m/data.pkl", "x"}, {"m/data/0", std::string(8 << 20, 'y')}});
  MemFile f(zip, /*mapped=*/false);
  auto r = ZipReader::open(f);
  REQUIRE(r.ok());
  CHECK(f.reads <= 2);
  CHECK(f.fetched <= 256 * 1024);
  CHECK(r->find("m/data/0")->size == (8u << 20));
}

TEST_CASE("zip: bytes prepended to the archive shift every offset") {
  std::string zip = "#!junk prefix\n" + make_archive(kRecords);
  MemFile f(zip, true);
  auto r = ZipReader::open(f);
  REQUIRE(r.ok());
  auto got = r->read(*r->find("model/version"), 64);
  REQUIRE(got.ok());
  CHECK(*got == "3\n");
}

TEST_CASE("zip: a flipped data byte fails the CRC check on read") {
  std::string zip = make_archive(kRecords);
  MemFile probe(zip, true);
  auto r0 = ZipReader::open(probe);
  REQUIRE(r0.ok());
  uint64_t off = r0->data_offset(*r0->find("model/data/0")).value();
  zip[off + 12345] ^= 1;
  MemFile f(zip, true);
  auto r = ZipReader::open(f);
  REQUIRE(r.ok());
  auto got = r->read(*r->find("model/data/0"), 1 << 30);
  REQUIRE_FALSE(got.ok());
  CHECK(got.status().code() == Errc::kCorrupt);
  CHECK(got.status().message().find("CRC") != std::string::npos);
  CHECK_FALSE(r->verify(*r->find("model/data/0")).ok());
  CHECK(r->verify(*r->find("model/version")).ok());
}

TEST_CASE("zip: every truncation is an error, never a crash or a silent success") {
  std::string zip =
      make_archive({{"a/data.pkl", std::string(300, 'p')}, {"a/data/0", std::string(5000, 'd')}});
  for (size_t len = 0; len < zip.size(); len += (len < 200 || zip.size() - len < 400) ? 1 : 97) {
    MemFile f(zip.substr(0, len), len % 2 == 0);
    auto r = ZipReader::open(f);
    if (!r.ok()) {
      CHECK(r.status().code() == Errc::kCorrupt);
      continue;
    }
    // The directory survived only if the cut is beyond it, which cannot be: the end record is last.
    FAIL("truncated archive of " << len << " bytes opened");
  }
  MemFile junk(std::string(1000, 'j'), true);
  auto r = ZipReader::open(junk);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("not a zip") != std::string::npos);
}

TEST_CASE("zip: ZIP64 end records when there are more than 65535 records") {
  StringSink sink;
  ZipWriter w(sink);
  const int n = 70000;
  for (int k = 0; k < n; ++k) REQUIRE(w.add("z/data/" + std::to_string(k), std::to_string(k)).ok());
  REQUIRE(w.finish().ok());
  MemFile f(sink.data(), true);
  auto r = ZipReader::open(f);
  REQUIRE(r.ok());
  REQUIRE(r->entries().size() == static_cast<size_t>(n));
  auto got = r->read(*r->find("z/data/69999"), 100);
  REQUIRE(got.ok());
  CHECK(*got == "69999");
}

TEST_CASE("zip: writer refuses a record longer or shorter than declared") {
  StringSink sink;
  ZipWriter w(sink);
  REQUIRE(w.begin("x", 3).ok());
  CHECK_FALSE(w.write("abcd", 4).ok());
  REQUIRE(w.write("ab", 2).ok());
  CHECK_FALSE(w.end().ok());
}

TEST_CASE("zip: a mapped record streamed twice gives the same bytes (released pages come back)") {
  std::string big(20u << 20, '\0');
  for (size_t k = 0; k < big.size(); ++k) big[k] = static_cast<char>((k * 2654435761u) >> 13);
  std::string zip = make_archive({{"m/data.pkl", "x"}, {"m/data/0", big}});
  MemFile f(zip, /*mapped=*/true);
  auto r = ZipReader::open(f);
  REQUIRE(r.ok());
  for (int pass = 0; pass < 2; ++pass) {
    auto got = r->read(*r->find("m/data/0"), 1u << 30);
    REQUIRE(got.ok());
    CHECK(*got == big);
  }
  CHECK(r->verify(*r->find("m/data/0")).ok());
}

TEST_CASE("zip: a copy that reuses the source's CRC fails when the source is corrupt") {
  std::string payload(10u << 20, 'q');  // several streaming chunks; the damage in the last
  payload[12345] = 'Z';
  std::string zip = make_archive({{"m/data.pkl", "x"}, {"m/data/0", payload}});
  for (bool corrupt : {false, true}) {
    std::string src = zip;
    MemFile probe(src, true);
    auto r0 = ZipReader::open(probe);
    REQUIRE(r0.ok());
    if (corrupt) src[r0->data_offset(*r0->find("m/data/0")).value() + (9u << 20) + 777] ^= 4;
    for (bool mapped : {true, false}) {
      MemFile f(src, mapped);
      auto r = ZipReader::open(f);
      REQUIRE(r.ok());
      const ZipEntry* e = r->find("m/data/0");
      StringSink sink;
      ZipWriter w(sink);
      REQUIRE(w.begin("copy/data/0", e->size, e->crc).ok());
      Status st = r->stream(*e, [&](const uint8_t* p, size_t n) { return w.write(p, n); });
      if (corrupt) {
        CHECK_FALSE(st.ok());
        CHECK(st.code() == Errc::kCorrupt);
        continue;
      }
      REQUIRE(st.ok());
      REQUIRE(w.end().ok());
      REQUIRE(w.finish().ok());
      MemFile out(sink.data(), mapped);
      auto rc = ZipReader::open(out);
      REQUIRE(rc.ok());
      auto got = rc->read(*rc->find("copy/data/0"), 1u << 30);
      REQUIRE(got.ok());  // the reused CRC is the right one
      CHECK(*got == payload);
    }
  }
}
