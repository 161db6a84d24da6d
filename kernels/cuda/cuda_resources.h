// RAII owners of the CUDA objects the backend uses: a stream, the cuBLAS and
// cuSOLVER handles bound to it, and stream-ordered device arrays for the
// scratch memory of single ops. Move-only; destructors never throw (they run
// during unwinding), so failures there are logged instead.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include <cstdint>
#include <utility>

#include "kernels/cuda/cuda_check.h"

namespace gptqd::cuda {

// Logs a failed CUDA call made from a destructor (where throwing would terminate).
void log_destructor_error(cudaError_t err, const char* call);

// A non-blocking stream (no implicit synchronization with the legacy default
// stream) on the device current at construction.
class CudaStream {
 public:
  CudaStream() { GPTQD_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
  ~CudaStream() {
    if (stream_) {
      const cudaError_t err = cudaStreamDestroy(stream_);
      if (err != cudaSuccess) log_destructor_error(err, "cudaStreamDestroy");
    }
  }
  CudaStream(const CudaStream&) = delete;
  CudaStream& operator=(const CudaStream&) = delete;
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

// A cuBLAS handle whose work runs on `stream`. TF32 stays off (CUBLAS_DEFAULT_MATH:
// fp32 GEMMs run in fp32 FMA), since the CPU twin computes in fp32.
class CublasHandle {
 public:
  explicit CublasHandle(cudaStream_t stream) {
    GPTQD_CUBLAS_CHECK(cublasCreate(&handle_));
    GPTQD_CUBLAS_CHECK(cublasSetStream(handle_, stream));
    GPTQD_CUBLAS_CHECK(cublasSetMathMode(handle_, CUBLAS_DEFAULT_MATH));
    GPTQD_CUBLAS_CHECK(cublasSetPointerMode(handle_, CUBLAS_POINTER_MODE_HOST));
  }
  ~CublasHandle() {
    if (handle_) cublasDestroy(handle_);
  }
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;
  cublasHandle_t get() const { return handle_; }

 private:
  cublasHandle_t handle_ = nullptr;
};

// A cuSOLVER dense handle on `stream`, with the parameter object the 64-bit
// API takes (default algorithms).
class CusolverHandle {
 public:
  explicit CusolverHandle(cudaStream_t stream) {
    GPTQD_CUSOLVER_CHECK(cusolverDnCreate(&handle_));
    GPTQD_CUSOLVER_CHECK(cusolverDnSetStream(handle_, stream));
    GPTQD_CUSOLVER_CHECK(cusolverDnCreateParams(&params_));
  }
  ~CusolverHandle() {
    if (params_) cusolverDnDestroyParams(params_);
    if (handle_) cusolverDnDestroy(handle_);
  }
  CusolverHandle(const CusolverHandle&) = delete;
  CusolverHandle& operator=(const CusolverHandle&) = delete;
  cusolverDnHandle_t get() const { return handle_; }
  cusolverDnParams_t params() const { return params_; }

 private:
  cusolverDnHandle_t handle_ = nullptr;
  cusolverDnParams_t params_ = nullptr;
};

// An event for ordering host work after queued device work (timing off).
class CudaEvent {
 public:
  CudaEvent() { GPTQD_CUDA_CHECK(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming)); }
  ~CudaEvent() {
    if (event_) cudaEventDestroy(event_);
  }
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;
  cudaEvent_t get() const { return event_; }

 private:
  cudaEvent_t event_ = nullptr;
};

// Page-locked host memory (cudaMallocHost) of `bytes` bytes.
class PinnedHostBuffer {
 public:
  explicit PinnedHostBuffer(size_t bytes) : bytes_(bytes) {
    GPTQD_CUDA_CHECK(cudaMallocHost(&ptr_, bytes));
  }
  ~PinnedHostBuffer() {
    if (ptr_) cudaFreeHost(ptr_);
  }
  PinnedHostBuffer(const PinnedHostBuffer&) = delete;
  PinnedHostBuffer& operator=(const PinnedHostBuffer&) = delete;
  void* get() const { return ptr_; }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// `count` elements of T from the stream-ordered allocator (cudaMallocAsync):
// usable by work queued on `stream` after construction, freed in stream order
// (cudaFreeAsync) so that work queued before destruction completes first. The
// contents are uninitialised.
template <typename T>
class DeviceArray {
 public:
  DeviceArray() = default;
  DeviceArray(int64_t count, cudaStream_t stream) : stream_(stream), count_(count) {
    GPTQD_CHECK(count >= 0, "device array of a negative count {}", count);
    if (count > 0)
      GPTQD_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&ptr_),
                                       static_cast<size_t>(count) * sizeof(T), stream));
  }
  ~DeviceArray() { reset(); }
  DeviceArray(DeviceArray&& o) noexcept { *this = std::move(o); }
  DeviceArray& operator=(DeviceArray&& o) noexcept {
    if (this != &o) {
      reset();
      std::swap(ptr_, o.ptr_);
      std::swap(stream_, o.stream_);
      std::swap(count_, o.count_);
    }
    return *this;
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  T* get() const { return ptr_; }
  int64_t size() const { return count_; }
  size_t bytes() const { return static_cast<size_t>(count_) * sizeof(T); }

 private:
  void reset() noexcept {
    if (ptr_) {
      const cudaError_t err = cudaFreeAsync(ptr_, stream_);
      if (err != cudaSuccess) log_destructor_error(err, "cudaFreeAsync");
    }
    ptr_ = nullptr;
    count_ = 0;
  }
  T* ptr_ = nullptr;
  cudaStream_t stream_ = nullptr;
  int64_t count_ = 0;
};

}  // namespace gptqd::cuda
