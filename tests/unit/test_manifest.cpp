#include <doctest/doctest.h>

#include "ckpt/checkpoint.h"
#include "ckpt/hash.h"

using namespace ckpt;

TEST_CASE("manifest round-trips sizes and hashes") {
  std::map<std::string, ManifestEntry> files = {{"a/b.pt", {12, "00ff"}}, {"_dst_cp", {0, "aa"}}};
  auto text = encode_manifest(files);
  auto back = decode_manifest(text, "m.json");
  REQUIRE(back.ok());
  CHECK(back->size() == 2);
  CHECK(back->at("a/b.pt").size == 12);
  CHECK(back->at("a/b.pt").hash == "00ff");
}

TEST_CASE("a damaged manifest is reported as corrupt, naming it") {
  auto r = decode_manifest("{\"ckpt_manifest\":1,\"hash\":\"xxh3-128\",\"files\":{\"a\":{\"size\":", "m1");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Errc::kCorrupt);
  CHECK(r.status().message().find("m1") != std::string::npos);
  CHECK(decode_manifest("{\"ckpt_manifest\":2,\"hash\":\"xxh3-128\",\"files\":{}}", "m").status().code() ==
        Errc::kCorrupt);
  CHECK_FALSE(decode_manifest("{\"ckpt_manifest\":1,\"hash\":\"md5\",\"files\":{}}", "m").ok());
}

TEST_CASE("hash is stable and content-sensitive") {
  Hasher a, b, c;
  a.update("hello", 5);
  b.update("hel", 3);
  b.update("lo", 2);
  c.update("hellp", 5);
  CHECK(a.hex_digest() == b.hex_digest());
  CHECK(a.hex_digest() != c.hex_digest());
  CHECK(a.hex_digest().size() == 32);
}
