// Error checks for the CUDA backend. Every CUDA runtime, cuBLAS and cuSOLVER
// call and every kernel launch goes through one of these macros; a failure
// throws gptqd::Error "<call> failed: <NAME>: <text> (file:line)". Internal to
// kernels/cuda (it includes the CUDA headers).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include "base/check.h"

namespace gptqd::cuda {

// cuSOLVER has no status-to-string function.
const char* cusolver_status_name(cusolverStatus_t status);

[[noreturn]] void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line);
[[noreturn]] void throw_cublas_error(cublasStatus_t status, const char* call, const char* file,
                                     int line);
[[noreturn]] void throw_cusolver_error(cusolverStatus_t status, const char* call, const char* file,
                                       int line);

}  // namespace gptqd::cuda

#define GPTQD_CUDA_CHECK(call)                                                \
  do {                                                                        \
    const cudaError_t gptqd_err_ = (call);                                    \
    if (gptqd_err_ != cudaSuccess)                                            \
      ::gptqd::cuda::throw_cuda_error(gptqd_err_, #call, __FILE__, __LINE__); \
  } while (0)

#define GPTQD_CUBLAS_CHECK(call)                                               \
  do {                                                                         \
    const cublasStatus_t gptqd_st_ = (call);                                   \
    if (gptqd_st_ != CUBLAS_STATUS_SUCCESS)                                    \
      ::gptqd::cuda::throw_cublas_error(gptqd_st_, #call, __FILE__, __LINE__); \
  } while (0)

#define GPTQD_CUSOLVER_CHECK(call)                                               \
  do {                                                                           \
    const cusolverStatus_t gptqd_st_ = (call);                                   \
    if (gptqd_st_ != CUSOLVER_STATUS_SUCCESS)                                    \
      ::gptqd::cuda::throw_cusolver_error(gptqd_st_, #call, __FILE__, __LINE__); \
  } while (0)

// After every <<<...>>>: a bad launch configuration is reported here, and a
// fault of an earlier asynchronous kernel (sticky) at the latest here.
#define GPTQD_CUDA_LAUNCH_CHECK(kernel)                                                      \
  do {                                                                                       \
    const cudaError_t gptqd_err_ = cudaGetLastError();                                       \
    if (gptqd_err_ != cudaSuccess)                                                           \
      ::gptqd::cuda::throw_cuda_error(gptqd_err_, "launch of " #kernel, __FILE__, __LINE__); \
  } while (0)
