// Bytes held by a backend's allocations, for Backend::memory_stats(): the CPU
// backend counts all its memory with it, the CUDA backend its pinned host memory
// (the device side is read from the stream-ordered pool). Thread-safe.
#pragma once

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <unordered_map>

namespace gptqd {

class MemoryCounter {
 public:
  // Records `bytes` held at `p` (not null).
  void add(const void* p, int64_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    sizes_[p] = bytes;
    in_use_ += bytes;
    peak_ = std::max(peak_, in_use_);
  }
  // Forgets `p` (a no-op for a pointer never added).
  void remove(const void* p) {
    std::lock_guard<std::mutex> lock(mu_);
    const auto it = sizes_.find(p);
    if (it == sizes_.end()) return;
    in_use_ -= it->second;
    sizes_.erase(it);
  }
  int64_t in_use() const {
    std::lock_guard<std::mutex> lock(mu_);
    return in_use_;
  }
  int64_t peak() const {
    std::lock_guard<std::mutex> lock(mu_);
    return peak_;
  }
  // From now on the peak is measured from what is in use now.
  void reset_peak() {
    std::lock_guard<std::mutex> lock(mu_);
    peak_ = in_use_;
  }

 private:
  mutable std::mutex mu_;
  std::unordered_map<const void*, int64_t> sizes_;
  int64_t in_use_ = 0, peak_ = 0;
};

}  // namespace gptqd
