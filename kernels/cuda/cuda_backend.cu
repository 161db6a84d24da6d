// CudaBackend: construction, the device, the stream and its library handles.
#include <cstdint>

#include "base/check.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"

namespace gptqd::cuda {
namespace {

// Checks `device` and makes it current, before the stream and handles (which
// bind to the current device) are created.
int make_current(int device) {
  int count = 0;
  GPTQD_CUDA_CHECK(cudaGetDeviceCount(&count));
  GPTQD_CHECK(device >= 0 && device < count, "CUDA device {} requested, but {} device(s) visible",
              device, count);
  GPTQD_CUDA_CHECK(cudaSetDevice(device));
  int pools = 0;
  GPTQD_CUDA_CHECK(cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, device));
  GPTQD_CHECK(pools != 0,
              "CUDA device {} does not support stream-ordered allocation (cudaMallocAsync), "
              "which the CUDA backend uses for all its memory",
              device);
  // Keep freed memory in the pool: with the default threshold (0) the pool returns it to the
  // driver at every synchronization, and the backend synchronizes often (downloads, the
  // factorization's info), so each layer's buffers (GBs) would be mapped again.
  cudaMemPool_t pool = nullptr;
  GPTQD_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
  uint64_t threshold = UINT64_MAX;
  GPTQD_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
  return device;
}

int shared_optin_bytes(int device) {
  int bytes = 0;
  GPTQD_CUDA_CHECK(cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  return bytes;
}

}  // namespace

CudaBackend::CudaBackend(int device)
    : device_(make_current(device)),
      max_shared_optin_(shared_optin_bytes(device_)),
      stream_(),
      cublas_(stream_.get()),
      cusolver_(stream_.get()),
      staging_(kStagingBytes) {
  reset_peak();  // memory_stats' peak counts from this backend's construction
}

CudaBackend::~CudaBackend() {
  // Let queued work (and stream-ordered frees) finish before the handles go.
  if (cudaSetDevice(device_) == cudaSuccess) {
    const cudaError_t err = cudaStreamSynchronize(stream_.get());
    if (err != cudaSuccess) log_destructor_error(err, "cudaStreamSynchronize");
  }
}

std::string CudaBackend::name() const { return fmt::format("cuda:{}", device_); }

void CudaBackend::activate() const {
  int current = -1;
  GPTQD_CUDA_CHECK(cudaGetDevice(&current));
  if (current != device_) GPTQD_CUDA_CHECK(cudaSetDevice(device_));
}

}  // namespace gptqd::cuda
