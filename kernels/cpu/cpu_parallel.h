// The CPU backend's threads: every op splits its work into items whose arithmetic does not
// depend on the thread count (rows of the GPTQ sweep and the quantizer, tiles of a GEMM or of
// X^T X, (sequence, head) pairs of the attention, rows or ranges of the pointwise ops) and runs
// the items on up to `threads` threads, the calling thread included. So results are bit-identical
// for any thread count. The BLAS runs single threaded inside an item (CpuBackend sets it so).
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
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

// The process's worker threads, started as loops first need them and kept (blocked on a
// condition variable) until exit: starting a thread per loop cost 45-120 us on the 2-core
// machine this was measured on, against 1-3 ms for a sequence's GEMM at one thread, and a job
// runs tens of thousands of loops. One loop at a time: a second caller waits for the first.
class WorkerPool {
 public:
  static WorkerPool& instance();
  // body(p) for p in [1, parts) on the workers and body(0) on the caller; returns when all
  // have returned. body must not throw.
  void run(int parts, const std::function<void(int)>& body);
  ~WorkerPool();

 private:
  WorkerPool() = default;
  void work(int64_t seen);

  std::mutex loop_;  // one loop at a time
  std::mutex m_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* body_ = nullptr;
  int64_t generation_ = 0;  // one per loop: a worker takes parts of each generation once
  int parts_ = 0, next_ = 0, pending_ = 0;
  bool stop_ = false;
};

// Calls body(p) for p in [0, parts) on `parts` threads (p = 0 on the caller), each marked as
// inside a parallel loop. The first exception thrown is rethrown after every part returned.
template <typename Body>
void run_parts(int parts, Body&& body) {
  std::vector<std::exception_ptr> errors(static_cast<size_t>(parts));
  const std::function<void(int)> run = [&](int p) {
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
  WorkerPool::instance().run(parts, run);
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
