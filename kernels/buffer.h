// RAII owners of backend memory.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "kernels/backend.h"

namespace gptqd {

// A backend-owned fp32 buffer of `size()` elements, zero-initialised.
class Buffer {
 public:
  Buffer() = default;
  Buffer(Backend& be, int64_t count)
      : be_(&be), ptr_(count > 0 ? be.alloc(count) : nullptr), n_(count) {}
  Buffer(Backend& be, const std::vector<float>& host)
      : Buffer(be, static_cast<int64_t>(host.size())) {
    if (n_ > 0) be_->to_device(ptr_, host.data(), n_);
  }
  ~Buffer() { reset(); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept { *this = std::move(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      reset();
      std::swap(be_, o.be_);
      std::swap(ptr_, o.ptr_);
      std::swap(n_, o.n_);
    }
    return *this;
  }

  float* data() { return ptr_; }
  const float* data() const { return ptr_; }
  int64_t size() const { return n_; }

  std::vector<float> to_host() const {
    std::vector<float> out(static_cast<size_t>(n_));
    if (n_ > 0) be_->to_host(out.data(), ptr_, n_);
    return out;
  }

 private:
  void reset() {
    if (ptr_) be_->release(ptr_);
    ptr_ = nullptr;
    n_ = 0;
  }
  Backend* be_ = nullptr;
  float* ptr_ = nullptr;
  int64_t n_ = 0;
};

// The same for uint8 codes.
class ByteBuffer {
 public:
  ByteBuffer() = default;
  ByteBuffer(Backend& be, int64_t count)
      : be_(&be), ptr_(count > 0 ? be.alloc_u8(count) : nullptr), n_(count) {}
  ~ByteBuffer() {
    if (ptr_) be_->release_u8(ptr_);
  }
  ByteBuffer(const ByteBuffer&) = delete;
  ByteBuffer& operator=(const ByteBuffer&) = delete;
  ByteBuffer(ByteBuffer&& o) noexcept : be_(o.be_), ptr_(o.ptr_), n_(o.n_) {
    o.ptr_ = nullptr;
    o.n_ = 0;
  }

  uint8_t* data() { return ptr_; }
  int64_t size() const { return n_; }
  std::vector<uint8_t> to_host() const {
    std::vector<uint8_t> out(static_cast<size_t>(n_));
    if (n_ > 0) be_->to_host_u8(out.data(), ptr_, n_);
    return out;
  }

 private:
  Backend* be_ = nullptr;
  uint8_t* ptr_ = nullptr;
  int64_t n_ = 0;
};

// Host memory from Backend::alloc_host (pinned on CUDA), not initialised.
class HostBuffer {
 public:
  HostBuffer() = default;
  HostBuffer(Backend& be, int64_t count)
      : be_(&be), ptr_(count > 0 ? be.alloc_host(count) : nullptr), n_(count) {}
  ~HostBuffer() { reset(); }
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
  HostBuffer(HostBuffer&& o) noexcept { *this = std::move(o); }
  HostBuffer& operator=(HostBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      std::swap(be_, o.be_);
      std::swap(ptr_, o.ptr_);
      std::swap(n_, o.n_);
    }
    return *this;
  }

  float* data() { return ptr_; }
  const float* data() const { return ptr_; }
  int64_t size() const { return n_; }

 private:
  void reset() {
    if (ptr_) be_->release_host(ptr_);
    ptr_ = nullptr;
    n_ = 0;
  }
  Backend* be_ = nullptr;
  float* ptr_ = nullptr;
  int64_t n_ = 0;
};

}  // namespace gptqd
