// What code outside kernels/cuda needs to know about a GPU and a CUDA backend,
// without naming a CUDA type (this header is included by files that are built
// with and without CUDA; without it every function here says so).
#pragma once

#include <cstdint>
#include <string>

#include "kernels/backend.h"

namespace gptqd {

struct CudaDeviceInfo {
  int device = -1;
  std::string name;  // "NVIDIA H100 80GB HBM3"
  int cc_major = 0, cc_minor = 0;
  int sm_count = 0;
  double clock_ghz = 0;   // peak SM clock
  double memory_gib = 0;  // total device memory
  // Dense peaks from the SM count and clock: fp32 on the CUDA cores (what an
  // fp32 GEMM with TF32 off can reach) and fp64 on the tensor cores of sm_80 /
  // sm_90 (what cuSOLVER's DGEMM-based factorizations can reach). 0 for other
  // architectures, whose per-SM rates this table does not know.
  double peak_fp32_tflops = 0;
  double peak_fp64_tflops = 0;
};

// Throws gptqd::Error when built without CUDA or `device` does not exist.
CudaDeviceInfo cuda_device_info(int device);

// Bytes of device memory free now on the backend's GPU (cudaMemGetInfo, after the pool has
// released what it holds unused); 0 for any other backend.
uint64_t cuda_backend_free_bytes(Backend& be);

// The device of a CUDA backend, -1 for any other backend.
int cuda_backend_device(const Backend& be);
// The backend's CUDA stream (a cudaStream_t) on which all its ops are queued,
// for code that queues its own GPU work in order with them (the NCCL
// transport). Throws gptqd::Error when `be` is not a CUDA backend.
void* cuda_backend_stream(const Backend& be);

}  // namespace gptqd
