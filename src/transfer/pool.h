// A bounded worker pool: runs task(i) for i in [0, n) on at most `workers` threads and
// returns the first failure. Tasks not yet started are skipped after a failure.
#pragma once

#include <cstddef>
#include <functional>

#include "ckpt/status.h"

namespace ckpt {

Status run_parallel(size_t n, unsigned workers, const std::function<Status(size_t)>& task);

// Default number of files in flight: the core count, at least 4.
unsigned default_workers();

}  // namespace ckpt
