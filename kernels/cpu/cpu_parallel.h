// The CPU backend's threads: every op splits its work into items whose arithmetic does not
// depend on the thread count (rows of the GPTQ sweep and the quantizer, tiles of a GEMM or of
// X^T X, (sequence, head) pairs of the attention, rows or ranges of the pointwise ops) and runs
// the items on up to `threads` threads, the calling thread included. So results are bit-identical
// for any thread count. The BLAS runs single threaded inside an item (CpuBackend sets it so).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <thread>
#include <vector>

namespace gptqd::cpu {

// Below this much work (items x cost per item, in rough element operations) the
// thread start-up (tens of microseconds) costs more than it saves.
constexpr int64_t kMinParallelWork = int64_t{1} << 18;

// True on a thread that runs items of a parallel loop: a loop started there runs on that
// thread alone, since the outer loop already occupies every thread.
inline bool& in_parallel_loop() {
  thread_local bool inside = false;
  return inside;
}

// The threads a loop over n items of work_per_item each uses: 1 when nested, when there is
// one item, or when the work is too small to pay for a thread.
inline int parallel_parts(int64_t n, int threads, int64_t work_per_item) {
  if (in_parallel_loop() || n <= 1) return 1;
  const int64_t by_work = std::max<int64_t>(1, n * work_per_item / kMinParallelWork);
  return static_cast<int>(
      std::min<int64_t>({static_cast<int64_t>(std::max(threads, 1)), n, by_work}));
}

// Calls body(p) for p in [0, parts) on `parts` threads (p = 0 on the caller), each marked as
// inside a parallel loop. The first exception thrown is rethrown after every thread joined.
template <typename Body>
void run_parts(int parts, Body&& body) {
  std::vector<std::exception_ptr> errors(static_cast<size_t>(parts));
  auto run = [&](int p) {
    bool& inside = in_parallel_loop();
    const bool was = inside;
    inside = true;
    try {
      body(p);
    } catch (...) {
      errors[static_cast<size_t>(p)] = std::current_exception();
    }
    inside = was;
  };
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(parts - 1));
  for (int p = 1; p < parts; ++p) pool.emplace_back(run, p);
  run(0);
  for (auto& t : pool) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

// Calls fn(begin, end) over disjoint ranges covering [0, n), one contiguous range per thread:
// for items of equal cost whose ranges share set-up (a scratch tile per range).
template <typename Fn>
void parallel_for(int64_t n, int threads, int64_t work_per_item, Fn&& fn) {
  const int parts = parallel_parts(n, threads, work_per_item);
  if (parts <= 1) {
    if (n > 0) fn(int64_t{0}, n);
    return;
  }
  const int64_t chunk = (n + parts - 1) / parts;
  run_parts(parts, [&](int p) {
    const int64_t begin = p * chunk;
    const int64_t end = std::min(n, begin + chunk);
    if (begin < end) fn(begin, end);
  });
}

// Calls fn(worker, i) once for each i in [0, n), the threads taking the next item as they
// finish one: for items of unequal cost (the tiles of X^T X, the heads of a short and a long
// sequence). worker < workers (parallel_parts with the same arguments, which the caller
// sizes per-worker scratch by). After an exception no new item starts.
template <typename Fn>
void parallel_tasks(int64_t n, int workers, Fn&& fn) {
  if (workers <= 1) {
    for (int64_t i = 0; i < n; ++i) fn(0, i);
    return;
  }
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  run_parts(workers, [&](int w) {
    try {
      for (int64_t i = next++; i < n && !failed.load(); i = next++) fn(w, i);
    } catch (...) {
      failed = true;
      throw;
    }
  });
}

}  // namespace gptqd::cpu
