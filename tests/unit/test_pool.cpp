#include <doctest/doctest.h>

#include <atomic>

#include "transfer/pool.h"

using namespace ckpt;

TEST_CASE("run_parallel runs every task and bounds concurrency") {
  std::atomic<int> running{0}, peak{0}, done{0};
  Status st = run_parallel(50, 3, [&](size_t) {
    int now = ++running;
    int p = peak.load();
    while (now > p && !peak.compare_exchange_weak(p, now)) {
    }
    ++done;
    --running;
    return Status();
  });
  CHECK(st.ok());
  CHECK(done == 50);
  CHECK(peak <= 3);
}

TEST_CASE("run_parallel returns the failure and stops starting new tasks") {
  std::atomic<int> started{0};
  Status st = run_parallel(1000, 2, [&](size_t i) {
    ++started;
    return i == 3 ? Status(Errc::kIo, "boom") : Status();
  });
  CHECK(st.code() == Errc::kIo);
  CHECK(st.message() == "boom");
  CHECK(started < 1000);
}
