// The throwing half of kernels/cuda/cuda_check.h, compiled by the host compiler.
#include "kernels/cuda/cuda_check.h"

#include "kernels/cuda/cuda_resources.h"
#include "base/log.h"

namespace gptqd::cuda {

const char* cusolver_status_name(cusolverStatus_t status) {
  switch (status) {
    case CUSOLVER_STATUS_SUCCESS:
      return "CUSOLVER_STATUS_SUCCESS";
    case CUSOLVER_STATUS_NOT_INITIALIZED:
      return "CUSOLVER_STATUS_NOT_INITIALIZED";
    case CUSOLVER_STATUS_ALLOC_FAILED:
      return "CUSOLVER_STATUS_ALLOC_FAILED";
    case CUSOLVER_STATUS_INVALID_VALUE:
      return "CUSOLVER_STATUS_INVALID_VALUE";
    case CUSOLVER_STATUS_ARCH_MISMATCH:
      return "CUSOLVER_STATUS_ARCH_MISMATCH";
    case CUSOLVER_STATUS_MAPPING_ERROR:
      return "CUSOLVER_STATUS_MAPPING_ERROR";
    case CUSOLVER_STATUS_EXECUTION_FAILED:
      return "CUSOLVER_STATUS_EXECUTION_FAILED";
    case CUSOLVER_STATUS_INTERNAL_ERROR:
      return "CUSOLVER_STATUS_INTERNAL_ERROR";
    case CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED:
      return "CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED";
    case CUSOLVER_STATUS_NOT_SUPPORTED:
      return "CUSOLVER_STATUS_NOT_SUPPORTED";
    case CUSOLVER_STATUS_ZERO_PIVOT:
      return "CUSOLVER_STATUS_ZERO_PIVOT";
    case CUSOLVER_STATUS_INVALID_WORKSPACE:
      return "CUSOLVER_STATUS_INVALID_WORKSPACE";
    default:
      return "CUSOLVER_STATUS_(other)";  // a third-party enum that grows between releases
  }
}

void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line) {
  detail::throw_check(
      file, line,
      fmt::format("{} failed: {}: {}", call, cudaGetErrorName(err), cudaGetErrorString(err)));
}

void throw_cublas_error(cublasStatus_t status, const char* call, const char* file, int line) {
  detail::throw_check(file, line,
                      fmt::format("{} failed: {}", call, cublasGetStatusString(status)));
}

void throw_cusolver_error(cusolverStatus_t status, const char* call, const char* file, int line) {
  detail::throw_check(file, line,
                      fmt::format("{} failed: {} ({})", call, cusolver_status_name(status),
                                  static_cast<int>(status)));
}

void log_destructor_error(cudaError_t err, const char* call) {
  GPTQD_LOG_ERROR("{} failed in a destructor: {}: {}", call, cudaGetErrorName(err),
                  cudaGetErrorString(err));
}

}  // namespace gptqd::cuda
