// RAII owners of backend memory: device buffers of fp32 (Buffer) and bytes (ByteBuffer),
// zero-initialised, and host buffers from alloc_host (HostBuffer).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "kernels/backend.h"

namespace gptqd {

// How a backend allocates, frees and downloads each element type.
template <typename T>
struct BackendMemory;
template <>
struct BackendMemory<float> {
  static float* alloc(Backend& be, int64_t n) { return be.alloc(n); }
  static void release(Backend& be, float* p) { be.release(p); }
  static void to_host(Backend& be, float* h, const float* s, int64_t n) { be.to_host(h, s, n); }
};
template <>
struct BackendMemory<uint8_t> {
  static uint8_t* alloc(Backend& be, int64_t n) { return be.alloc_u8(n); }
  static void release(Backend& be, uint8_t* p) { be.release_u8(p); }
  static void to_host(Backend& be, uint8_t* h, const uint8_t* s, int64_t n) {
    be.to_host_u8(h, s, n);
  }
};
// bf16 bit patterns (kernels/half.h) in alloc_u8 memory: a weight kept at half its fp32 size.
template <>
struct BackendMemory<uint16_t> {
  static uint16_t* alloc(Backend& be, int64_t n) {
    return reinterpret_cast<uint16_t*>(be.alloc_u8(2 * n));
  }
  static void release(Backend& be, uint16_t* p) { be.release_u8(reinterpret_cast<uint8_t*>(p)); }
  static void to_host(Backend& be, uint16_t* h, const uint16_t* s, int64_t n) {
    be.to_host_u8(reinterpret_cast<uint8_t*>(h), reinterpret_cast<const uint8_t*>(s), 2 * n);
  }
};

// Host memory from alloc_host (not initialised).
struct PinnedHostMemory {
  static float* alloc(Backend& be, int64_t n) { return be.alloc_host(n); }
  static void release(Backend& be, float* p) { be.release_host(p); }
};

// `size()` elements from Memory::alloc, released with the owner.
template <typename T, typename Memory = BackendMemory<T>>
class BasicBuffer {
 public:
  BasicBuffer() = default;
  BasicBuffer(Backend& be, int64_t count)
      : be_(&be), ptr_(count > 0 ? Memory::alloc(be, count) : nullptr), n_(count) {}
  // A device copy of host data (fp32 only).
  BasicBuffer(Backend& be, const std::vector<T>& host)
      : BasicBuffer(be, static_cast<int64_t>(host.size())) {
    if (n_ > 0) be_->to_device(ptr_, host.data(), n_);
  }
  ~BasicBuffer() { reset(); }
  BasicBuffer(const BasicBuffer&) = delete;
  BasicBuffer& operator=(const BasicBuffer&) = delete;
  BasicBuffer(BasicBuffer&& o) noexcept { *this = std::move(o); }
  BasicBuffer& operator=(BasicBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      std::swap(be_, o.be_);
      std::swap(ptr_, o.ptr_);
      std::swap(n_, o.n_);
    }
    return *this;
  }

  T* data() { return ptr_; }
  const T* data() const { return ptr_; }
  int64_t size() const { return n_; }

  // A host copy (device buffers only).
  std::vector<T> to_host() const {
    std::vector<T> out(static_cast<size_t>(n_));
    if (n_ > 0) Memory::to_host(*be_, out.data(), ptr_, n_);
    return out;
  }

 private:
  void reset() {
    if (ptr_) Memory::release(*be_, ptr_);
    ptr_ = nullptr;
    n_ = 0;
  }
  Backend* be_ = nullptr;
  T* ptr_ = nullptr;
  int64_t n_ = 0;
};

using Buffer = BasicBuffer<float>;
using ByteBuffer = BasicBuffer<uint8_t>;
using Bf16Buffer = BasicBuffer<uint16_t>;  // bf16 bit patterns
using HostBuffer = BasicBuffer<float, PinnedHostMemory>;

}  // namespace gptqd
