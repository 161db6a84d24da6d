// Row-parallel loops for the CPU backend's per-row kernels (the GPTQ column
// sweep, the quantizer's parameter search). Each row is computed by the same
// code whatever the thread count, so results do not depend on it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <exception>
#include <thread>
#include <vector>

namespace gptqd::cpu {

// Below this much work (rows x cost per row, in rough element operations) the
// thread start-up (tens of microseconds) costs more than it saves.
constexpr int64_t kMinParallelWork = int64_t{1} << 18;

// Calls fn(begin, end) over disjoint ranges covering [0, n), on up to
// `threads` threads (the calling thread included). The first exception thrown
// by any range is rethrown after all threads have joined.
template <typename Fn>
void parallel_for(int64_t n, int threads, int64_t work_per_item, Fn&& fn) {
  const int64_t by_work = std::max<int64_t>(1, n * work_per_item / kMinParallelWork);
  const int64_t parts = std::min<int64_t>({static_cast<int64_t>(std::max(threads, 1)), n, by_work});
  if (parts <= 1) {
    if (n > 0) fn(int64_t{0}, n);
    return;
  }
  std::vector<std::thread> pool;
  std::vector<std::exception_ptr> errors(static_cast<size_t>(parts));
  const int64_t chunk = (n + parts - 1) / parts;
  auto run = [&](int64_t p) {
    try {
      const int64_t begin = p * chunk;
      const int64_t end = std::min(n, begin + chunk);
      if (begin < end) fn(begin, end);
    } catch (...) {
      errors[static_cast<size_t>(p)] = std::current_exception();
    }
  };
  pool.reserve(static_cast<size_t>(parts - 1));
  for (int64_t p = 1; p < parts; ++p) pool.emplace_back(run, p);
  run(0);
  for (auto& t : pool) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace gptqd::cpu
