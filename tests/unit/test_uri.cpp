#include <doctest/doctest.h>

#include "ckpt/uri.h"

using namespace ckpt;

TEST_CASE("Flyte's spellings of 'not provided' are unset") {
  for (const char* v : {"", "\"\"", "''", "{{.prevCheckpointPrefix}}",
                        "{{.checkpointOutputPrefix}}", "  "}) {
    CHECK_MESSAGE(is_unset_location(v), v);
  }
  CHECK_FALSE(is_unset_location("s3://b/p"));
  CHECK_FALSE(is_unset_location("/tmp/x"));
  CHECK_FALSE(is_unset_location("{{.other}}"));
}

TEST_CASE("local paths and file URIs") {
  auto a = parse_location("/data/ckpt");
  REQUIRE(a.ok());
  CHECK(a->scheme == "file");
  CHECK(a->path == "/data/ckpt");
  auto b = parse_location("file:///data/ckpt");
  REQUIRE(b.ok());
  CHECK(b->path == "/data/ckpt");
  CHECK(b->is_local());
  auto rel = parse_location("rel/dir");
  REQUIRE(rel.ok());
  CHECK(rel->path == "rel/dir");
  auto bad = parse_location("file://relative");
  CHECK(bad.status().code() == Errc::kInvalidArgument);
}

TEST_CASE("s3 URIs split into bucket and prefix") {
  auto l = parse_location("s3://my-bucket/a/b/_flytecheckpoints/");
  REQUIRE(l.ok());
  CHECK(l->scheme == "s3");
  CHECK(l->bucket == "my-bucket");
  CHECK(l->path == "a/b/_flytecheckpoints");
  CHECK(l->uri == "s3://my-bucket/a/b/_flytecheckpoints");
  auto root = parse_location("S3://bucket");
  REQUIRE(root.ok());
  CHECK(root->path.empty());
  CHECK(parse_location("s3:///key").status().code() == Errc::kInvalidArgument);
}

TEST_CASE("unknown schemes are refused with the scheme named") {
  auto r = parse_location("ftp://host/x");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Errc::kInvalidArgument);
  CHECK(r.status().message().find("ftp://") != std::string::npos);
}

TEST_CASE("keys that could escape a directory are refused") {
  for (const char* k : {"../x", "a/../../x", "/etc/passwd", "a//b", "./a", "a/.", "", "a\\b"}) {
    CHECK_MESSAGE(!check_relative_key(k).ok(), k);
  }
  for (const char* k : {"a", "a/b/c.pt", "..a", "a..", ".hidden", "_dst_cp"}) {
    CHECK_MESSAGE(check_relative_key(k).ok(), k);
  }
}

TEST_CASE("join_key uses exactly one slash") {
  CHECK(join_key("s3://b/p", "x") == "s3://b/p/x");
  CHECK(join_key("s3://b/p/", "/x") == "s3://b/p/x");
  CHECK(join_key("", "x") == "x");
}
