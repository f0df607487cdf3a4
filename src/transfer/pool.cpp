#include "transfer/pool.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

namespace ckpt {

Status run_parallel(size_t n, unsigned workers, const std::function<Status(size_t)>& task) {
  if (n == 0) return {};
  workers = std::max(1u, std::min<unsigned>(workers, static_cast<unsigned>(n)));
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  Status first;
  auto worker = [&] {
    for (;;) {
      if (failed.load()) return;
      size_t i = next.fetch_add(1);
      if (i >= n) return;
      Status st = task(i);
      if (!st.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first.ok()) first = std::move(st);
        failed.store(true);
      }
    }
  };
  if (workers == 1) {
    worker();
    return first;
  }
  std::vector<std::thread> threads;
  threads.reserve(workers - 1);
  for (unsigned w = 1; w < workers; ++w) threads.emplace_back(worker);
  worker();
  for (auto& t : threads) t.join();
  return first;
}

// Four in flight keeps the disk busy while another file is being hashed, even on two cores.
unsigned default_workers() { return std::max(4u, std::thread::hardware_concurrency()); }

}  // namespace ckpt
