#include <doctest/doctest.h>

#include "checkpoint/layout.h"

using namespace ckpt;

TEST_CASE("step numbers parse from keys, one spelling per step") {
  std::string rest;
  CHECK(layout::step_of(".ckpt/steps/12/a/b.pt", &rest) == 12u);
  CHECK(rest == "a/b.pt");
  CHECK(layout::step_of(".ckpt/steps/0/x") == 0u);
  CHECK_FALSE(layout::step_of(".ckpt/steps/012/x"));
  CHECK_FALSE(layout::step_of(".ckpt/steps/1x/x"));
  CHECK_FALSE(layout::step_of(".ckpt/steps/3"));
  CHECK_FALSE(layout::step_of("steps/3/x"));
  CHECK(layout::step_prefix(7) == ".ckpt/steps/7/");
}

TEST_CASE("--step accepts a number or next, and names what is wrong") {
  CHECK(StepChoice::parse("").value().kind == StepChoice::kNone);
  CHECK(StepChoice::parse("next").value().kind == StepChoice::kNext);
  auto n = StepChoice::parse("42");
  REQUIRE(n.ok());
  CHECK(n->kind == StepChoice::kNumber);
  CHECK(n->number == 42u);
  for (const char* bad : {"-1", "1.5", "last", "99999999999999999999"}) {
    auto r = StepChoice::parse(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Errc::kInvalidArgument);
    CHECK(r.status().message().find(bad) != std::string::npos);
  }
}

TEST_CASE("save ids sort by time and tell whether their process may be alive") {
  auto a = layout::new_save_id();
  auto b = layout::new_save_id();
  CHECK(a < b);
  CHECK(layout::id_time(a) > 0);
  CHECK(layout::id_time(".ckpt/manifests/" + a + ".json") == layout::id_time(a));
  CHECK(layout::id_may_be_live(a));  // this process
  // This host, a process that cannot exist.
  std::string dead = a.substr(0, a.rfind('-'));
  dead = dead.substr(0, dead.rfind('-')) + "-999999999-0000";
  CHECK_FALSE(layout::id_may_be_live(dead));
  // Another host: alive for a day.
  CHECK(layout::id_may_be_live(a.substr(0, 21) + "elsewhere-1-0000"));
  CHECK_FALSE(layout::id_may_be_live("00000000000000000001-elsewhere-1-0000"));
}
