// CudaBackend: memory, copies and fill. All memory comes from the device's
// stream-ordered pool (cudaMallocAsync / cudaFreeAsync on the backend's
// stream): a release never waits for the device (cudaFree would synchronize
// the whole device), and memory released while ops that read it are still
// queued is reused only after them.
#include <cstdint>
#include <cstring>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_launch.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace gptqd::cuda {
namespace {

__global__ void fill_kernel(float* p, float value, int64_t n) {
  for (int64_t i = grid_start(); i < n; i += grid_stride()) p[i] = value;
}

bool overlaps(const void* a, const void* b, size_t bytes) {
  const auto x = reinterpret_cast<uintptr_t>(a);
  const auto y = reinterpret_cast<uintptr_t>(b);
  return x < y + bytes && y < x + bytes;
}

}  // namespace

void launch_fill(float* p, float value, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  fill_kernel<<<grid_for(n), kThreads, 0, stream>>>(p, value, n);
  GPTQD_CUDA_LAUNCH_CHECK(fill_kernel);
}

void* CudaBackend::alloc_bytes(int64_t bytes) {
  GPTQD_CHECK(bytes >= 0, "cuda alloc of a negative size {}", bytes);
  if (bytes == 0) return nullptr;
  activate();
  void* p = nullptr;
  const cudaError_t err = cudaMallocAsync(&p, static_cast<size_t>(bytes), stream());
  if (err != cudaSuccess) {
    cudaGetLastError();  // out of memory is not sticky; leave no error behind
    size_t free_bytes = 0, total_bytes = 0;
    cudaMemGetInfo(&free_bytes, &total_bytes);
    throw Error(fmt::format("cuda:{}: allocating {} bytes failed ({}); {} of {} bytes free",
                            device_, bytes, cudaGetErrorString(err), free_bytes, total_bytes));
  }
  // The interface promises zeroed memory; queued, so it precedes any use.
  GPTQD_CUDA_CHECK(cudaMemsetAsync(p, 0, static_cast<size_t>(bytes), stream()));
  return p;
}

void CudaBackend::release_bytes(void* p) noexcept {
  if (!p) return;
  cudaError_t err = cudaSetDevice(device_);
  if (err == cudaSuccess) err = cudaFreeAsync(p, stream());
  if (err != cudaSuccess) log_destructor_error(err, "cudaFreeAsync");
}

float* CudaBackend::alloc(int64_t count) {
  GPTQD_CHECK(count >= 0, "cuda alloc of a negative count {}", count);
  return static_cast<float*>(alloc_bytes(count * static_cast<int64_t>(sizeof(float))));
}

void CudaBackend::release(float* p) { release_bytes(p); }

uint8_t* CudaBackend::alloc_u8(int64_t count) { return static_cast<uint8_t*>(alloc_bytes(count)); }

void CudaBackend::release_u8(uint8_t* p) { release_bytes(p); }

void CudaBackend::upload(void* dst, const void* host, size_t bytes) {
  if (bytes == 0) return;
  activate();
  if (bytes <= kStagingBytes) {
    // The previous small upload's copy may still be reading the staging
    // buffer: wait for it, refill, queue the copy and mark it. The host
    // buffer is free on return; the host runs at most one small upload ahead
    // of the device, and the device never waits for the host.
    GPTQD_CUDA_CHECK(cudaEventSynchronize(staging_free_.get()));
    std::memcpy(staging_.get(), host, bytes);
    GPTQD_CUDA_CHECK(cudaMemcpyAsync(dst, staging_.get(), bytes, cudaMemcpyHostToDevice, stream()));
    GPTQD_CUDA_CHECK(cudaEventRecord(staging_free_.get(), stream()));
    return;
  }
  GPTQD_CUDA_CHECK(cudaMemcpyAsync(dst, host, bytes, cudaMemcpyHostToDevice, stream()));
  GPTQD_CUDA_CHECK(cudaStreamSynchronize(stream()));
}

void CudaBackend::download(void* host, const void* src, size_t bytes) {
  if (bytes == 0) return;
  activate();
  GPTQD_CUDA_CHECK(cudaMemcpyAsync(host, src, bytes, cudaMemcpyDeviceToHost, stream()));
  GPTQD_CUDA_CHECK(cudaStreamSynchronize(stream()));
}

void CudaBackend::to_device(float* dst, const float* host, int64_t count) {
  if (count > 0) upload(dst, host, static_cast<size_t>(count) * sizeof(float));
}

void CudaBackend::to_host(float* host, const float* src, int64_t count) {
  if (count > 0) download(host, src, static_cast<size_t>(count) * sizeof(float));
}

void CudaBackend::to_host_u8(uint8_t* host, const uint8_t* src, int64_t count) {
  if (count > 0) download(host, src, static_cast<size_t>(count));
}

void CudaBackend::copy(float* dst, const float* src, int64_t count) {
  if (count <= 0 || dst == src) return;
  activate();
  const size_t bytes = static_cast<size_t>(count) * sizeof(float);
  if (!overlaps(dst, src, bytes)) {
    GPTQD_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream()));
    return;
  }
  // The CPU twin is a memmove; cudaMemcpy* leaves overlapping ranges undefined,
  // so go through a scratch copy.
  DeviceArray<float> tmp(count, stream());
  GPTQD_CUDA_CHECK(cudaMemcpyAsync(tmp.get(), src, bytes, cudaMemcpyDeviceToDevice, stream()));
  GPTQD_CUDA_CHECK(cudaMemcpyAsync(dst, tmp.get(), bytes, cudaMemcpyDeviceToDevice, stream()));
}

void CudaBackend::copy_2d(int64_t rows, int64_t cols, const float* src, int64_t lds, float* dst,
                          int64_t ldd) {
  if (rows <= 0 || cols <= 0) return;
  if (rows == 1) {
    copy(dst, src, cols);
    return;
  }
  GPTQD_CHECK(lds >= cols && ldd >= cols, "copy_2d of {} columns with leading dimensions {} and {}",
              cols, lds, ldd);
  activate();
  GPTQD_CUDA_CHECK(cudaMemcpy2DAsync(
      dst, static_cast<size_t>(ldd) * sizeof(float), src, static_cast<size_t>(lds) * sizeof(float),
      static_cast<size_t>(cols) * sizeof(float), static_cast<size_t>(rows),
      cudaMemcpyDeviceToDevice, stream()));
}

void CudaBackend::fill(float* dst, float value, int64_t count) {
  if (count <= 0) return;
  activate();
  launch_fill(dst, value, count, stream());
}

void CudaBackend::synchronize() {
  activate();
  GPTQD_CUDA_CHECK(cudaStreamSynchronize(stream()));
}

float* CudaBackend::alloc_host(int64_t count) {
  GPTQD_CHECK(count >= 0, "pinned host alloc of a negative count {}", count);
  if (count == 0) return nullptr;
  activate();
  const int64_t bytes = count * static_cast<int64_t>(sizeof(float));
  void* p = nullptr;
  const cudaError_t err = cudaHostAlloc(&p, static_cast<size_t>(bytes), cudaHostAllocPortable);
  if (err != cudaSuccess) {
    cudaGetLastError();
    throw Error(fmt::format("cuda:{}: pinning {} bytes of host memory failed ({})", device_, bytes,
                            cudaGetErrorString(err)));
  }
  host_.add(p, bytes);
  return static_cast<float*>(p);
}

void CudaBackend::release_host(float* p) {
  if (!p) return;
  host_.remove(p);
  // A copy queued from this memory may still be running: the stream must pass it first.
  cudaError_t err = cudaSetDevice(device_);
  if (err == cudaSuccess) err = cudaStreamSynchronize(stream());
  if (err == cudaSuccess) err = cudaFreeHost(p);
  if (err != cudaSuccess) log_destructor_error(err, "cudaFreeHost");
}

// The device side from the stream-ordered pool every allocation (alloc*, ops'
// DeviceArray scratch) comes from; cuBLAS / cuSOLVER handle workspaces are not in it.
MemoryStats CudaBackend::memory_stats() {
  synchronize();
  cudaMemPool_t pool = nullptr;
  GPTQD_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device_));
  uint64_t used = 0, high = 0;  // the attribute type, cuuint64_t
  GPTQD_CUDA_CHECK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &used));
  GPTQD_CUDA_CHECK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &high));
  return MemoryStats{static_cast<int64_t>(used), static_cast<int64_t>(high), host_.in_use(),
                     host_.peak()};
}

void CudaBackend::reset_peak() {
  synchronize();
  cudaMemPool_t pool = nullptr;
  GPTQD_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device_));
  uint64_t zero = 0;  // "the high watermark can only be reset to zero"
  GPTQD_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &zero));
  host_.reset_peak();
}

}  // namespace gptqd::cuda
