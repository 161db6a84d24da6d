#include "kernels/cpu/cpu_parallel.h"

namespace gptqd::cpu {

WorkerPool& WorkerPool::instance() {
  static WorkerPool pool;
  return pool;
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard<std::mutex> lock(m_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void WorkerPool::run(int parts, const std::function<void(int)>& body) {
  if (parts <= 1) {
    if (parts == 1) body(0);
    return;
  }
  std::lock_guard<std::mutex> one_loop(loop_);
  {
    std::lock_guard<std::mutex> lock(m_);
    while (static_cast<int>(workers_.size()) < parts - 1) {
      const int64_t seen = generation_;
      workers_.emplace_back([this, seen] { work(seen); });
    }
    body_ = &body;
    parts_ = parts;
    next_ = 1;
    pending_ = parts - 1;
    ++generation_;
  }
  for (int i = 1; i < parts; ++i) wake_.notify_one();  // not every worker of a larger pool
  body(0);
  std::unique_lock<std::mutex> lock(m_);
  // Parts no worker has taken yet run here: the loop never waits on a worker that the
  // scheduler has not woken.
  while (next_ < parts_) {
    const int p = next_++;
    lock.unlock();
    body(p);
    lock.lock();
    --pending_;
  }
  done_.wait(lock, [&] { return pending_ == 0; });
  body_ = nullptr;
}

void WorkerPool::work(int64_t seen) {
  in_parallel_loop() = true;  // loops started by a part run on its thread
  std::unique_lock<std::mutex> lock(m_);
  for (;;) {
    wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
    if (stop_) return;
    seen = generation_;
    while (next_ < parts_) {
      const int p = next_++;
      const std::function<void(int)>* body = body_;
      lock.unlock();
      (*body)(p);
      lock.lock();
      if (--pending_ == 0) done_.notify_one();
    }
  }
}

}  // namespace gptqd::cpu
