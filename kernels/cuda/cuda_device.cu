// CUDA device discovery, the factory of the CUDA backend (kernels/backend.h)
// and the device/backend queries of kernels/cuda/cuda_info.h.
#include <cuda_runtime.h>

#include <memory>

#include "kernels/backend.h"
#include "base/check.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_info.h"

namespace gptqd {

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver / no device" error
    return 0;
  }
  return n;
}

std::unique_ptr<Backend> make_cuda_backend(int device) {
  const int count = cuda_device_count();
  if (device < 0 || device >= count)
    throw Error(
        fmt::format("CUDA device {} requested, but {} CUDA device(s) are visible", device, count));
  return std::make_unique<cuda::CudaBackend>(device);
}

namespace {

// Dense FMA lanes per SM (2 flops each): fp32 on the CUDA cores, fp64 on the
// tensor cores (DMMA), from NVIDIA's A100 and H100 architecture whitepapers:
// A100 (sm_80) 64 fp32 / 64 fp64-tensor, H100 (sm_90) 128 / 128. Other
// architectures: unknown here (0), so a benchmark prints no fraction of peak
// rather than a wrong one.
struct PerSm {
  int fp32, fp64_tensor;
};
PerSm per_sm(int major, int minor) {
  if (major == 8 && minor == 0) return {64, 64};
  if (major == 9 && minor == 0) return {128, 128};
  return {0, 0};
}

}  // namespace

CudaDeviceInfo cuda_device_info(int device) {
  const int count = cuda_device_count();
  if (device < 0 || device >= count)
    throw Error(
        fmt::format("CUDA device {} requested, but {} CUDA device(s) are visible", device, count));
  cudaDeviceProp prop{};
  GPTQD_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  int clock_khz = 0;
  GPTQD_CUDA_CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, device));
  CudaDeviceInfo info;
  info.device = device;
  info.name = prop.name;
  info.cc_major = prop.major;
  info.cc_minor = prop.minor;
  info.sm_count = prop.multiProcessorCount;
  info.clock_ghz = clock_khz * 1e-6;
  info.memory_gib = static_cast<double>(prop.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0);
  const PerSm lanes = per_sm(prop.major, prop.minor);
  const double sm_ghz = info.sm_count * info.clock_ghz;
  info.peak_fp32_tflops = 2.0 * lanes.fp32 * sm_ghz * 1e-3;
  info.peak_fp64_tflops = 2.0 * lanes.fp64_tensor * sm_ghz * 1e-3;
  return info;
}

int cuda_backend_device(const Backend& be) {
  const auto* cuda = dynamic_cast<const cuda::CudaBackend*>(&be);
  return cuda ? cuda->device() : -1;
}

uint64_t cuda_backend_free_bytes(Backend& be) {
  auto* cuda = dynamic_cast<cuda::CudaBackend*>(&be);
  if (!cuda) return 0;
  cuda->synchronize();  // makes the device current; queued frees have run
  cudaMemPool_t pool = nullptr;
  GPTQD_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, cuda->device()));
  GPTQD_CUDA_CHECK(cudaMemPoolTrimTo(pool, 0));
  size_t free_bytes = 0, total_bytes = 0;
  GPTQD_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  return static_cast<uint64_t>(free_bytes);
}

void* cuda_backend_stream(const Backend& be) {
  const auto* cuda = dynamic_cast<const cuda::CudaBackend*>(&be);
  if (!cuda) throw Error(fmt::format("backend '{}' is not a CUDA backend", be.name()));
  return static_cast<void*>(cuda->stream());
}

}  // namespace gptqd
