// CudaBackend::gelu, add, add_bias: grid-stride elementwise kernels, with
// BLOOM's GELU from kernels/quant_math.h (tanhf is CUDA's, within 2 ulp of
// the CPU libm's).
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_launch.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/quant_math.h"

namespace gptqd::cuda {
namespace {

__global__ void gelu_kernel(int64_t n, float* x) {
  for (int64_t i = grid_start(); i < n; i += grid_stride()) x[i] = gelu_bloom(x[i]);
}

__global__ void add_kernel(int64_t n, const float* a, float* y) {
  for (int64_t i = grid_start(); i < n; i += grid_stride()) y[i] += a[i];
}

__global__ void add_bias_kernel(int64_t rows, int64_t cols, const float* bias, float* y) {
  const int64_t n = rows * cols;
  for (int64_t i = grid_start(); i < n; i += grid_stride()) y[i] += bias[i % cols];
}

}  // namespace

void launch_gelu(int64_t n, float* x, cudaStream_t stream) {
  if (n <= 0) return;
  gelu_kernel<<<grid_for(n), kThreads, 0, stream>>>(n, x);
  GPTQD_CUDA_LAUNCH_CHECK(gelu_kernel);
}

void launch_add(int64_t n, const float* a, float* y, cudaStream_t stream) {
  if (n <= 0) return;
  add_kernel<<<grid_for(n), kThreads, 0, stream>>>(n, a, y);
  GPTQD_CUDA_LAUNCH_CHECK(add_kernel);
}

void launch_add_bias(int64_t rows, int64_t cols, const float* bias, float* y, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return;
  add_bias_kernel<<<grid_for(rows * cols), kThreads, 0, stream>>>(rows, cols, bias, y);
  GPTQD_CUDA_LAUNCH_CHECK(add_bias_kernel);
}

void CudaBackend::gelu(int64_t n, float* x) {
  if (n <= 0) return;
  activate();
  launch_gelu(n, x, stream());
}

void CudaBackend::add(int64_t n, const float* a, float* y) {
  if (n <= 0) return;
  activate();
  launch_add(n, a, y, stream());
}

void CudaBackend::add_bias(int64_t rows, int64_t cols, const float* bias, float* y) {
  if (rows <= 0 || cols <= 0) return;
  activate();
  launch_add_bias(rows, cols, bias, y, stream());
}

}  // namespace gptqd::cuda
