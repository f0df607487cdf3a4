#include <doctest/doctest.h>

#include "ckpt/run.h"

using namespace ckpt;
using std::chrono::milliseconds;

namespace {
milliseconds ms(const char* text) {
  auto d = parse_duration(text);
  REQUIRE_MESSAGE(d.ok(), text, ": ", d.status().message());
  return *d;
}
}  // namespace

TEST_CASE("durations with units and plain seconds") {
  CHECK(ms("500ms") == milliseconds(500));
  CHECK(ms("25s") == milliseconds(25'000));
  CHECK(ms("10m") == milliseconds(600'000));
  CHECK(ms("1h") == milliseconds(3'600'000));
  CHECK(ms("30") == milliseconds(30'000));
  CHECK(ms("0") == milliseconds(0));
  CHECK(ms("0ms") == milliseconds(0));
  CHECK(ms("007s") == milliseconds(7'000));
}

TEST_CASE("decimal durations round to milliseconds") {
  CHECK(ms("1.5") == milliseconds(1'500));
  CHECK(ms("0.25s") == milliseconds(250));
  CHECK(ms("0.1") == milliseconds(100));
  CHECK(ms("1.5m") == milliseconds(90'000));
  CHECK(ms("0.5h") == milliseconds(1'800'000));
  CHECK(ms("2.5ms") == milliseconds(3));
  CHECK(ms("0.0004") == milliseconds(0));
}

TEST_CASE("malformed durations are usage errors that name the text") {
  for (const char* bad : {"", " ", "5x", "s", "ms", "-1", "-1s", "+5", "1.", ".5", "1..5", "1.5.2",
                          "1e3", "5 s", " 5s", "5s ", "5S", "5sec", "5min", "1h30m", "0x10", "inf",
                          "nan", "1,5", "10mss"}) {
    auto d = parse_duration(bad);
    CHECK_MESSAGE(!d.ok(), "accepted '", bad, "'");
    if (!d.ok()) {
      CHECK(d.status().code() == Errc::kInvalidArgument);
      CHECK(d.status().message().find(std::string("'") + bad + "'") != std::string::npos);
    }
  }
}

TEST_CASE("durations longer than a year are refused") {
  CHECK(ms("8760h") == milliseconds(8760LL * 3'600'000));
  CHECK_FALSE(parse_duration("8761h").ok());
  CHECK_FALSE(parse_duration("99999999999999999999999999").ok());
}
