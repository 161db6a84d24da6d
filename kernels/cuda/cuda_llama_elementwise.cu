// CudaBackend::silu_mul, relu: grid-stride elementwise kernels with the
// per-element functions of kernels/nn_math.h. relu is exact on both sides;
// silu's expf is CUDA's, within 2 ulp of the CPU libm's.
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_launch.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/nn_math.h"

namespace gptqd::cuda {
namespace {

__global__ void silu_mul_kernel(int64_t n, float* gate, const float* up) {
  for (int64_t i = grid_start(); i < n; i += grid_stride()) gate[i] = silu(gate[i]) * up[i];
}

__global__ void relu_kernel(int64_t n, float* x) {
  for (int64_t i = grid_start(); i < n; i += grid_stride()) x[i] = gptqd::relu(x[i]);
}

}  // namespace

void launch_silu_mul(int64_t n, float* gate, const float* up, cudaStream_t stream) {
  if (n <= 0) return;
  silu_mul_kernel<<<grid_for(n), kThreads, 0, stream>>>(n, gate, up);
  GPTQD_CUDA_LAUNCH_CHECK(silu_mul_kernel);
}

void launch_relu(int64_t n, float* x, cudaStream_t stream) {
  if (n <= 0) return;
  relu_kernel<<<grid_for(n), kThreads, 0, stream>>>(n, x);
  GPTQD_CUDA_LAUNCH_CHECK(relu_kernel);
}

void CudaBackend::silu_mul(int64_t n, float* gate, const float* up) {
  if (n <= 0) return;
  activate();
  launch_silu_mul(n, gate, up, stream());
}

void CudaBackend::relu(int64_t n, float* x) {
  if (n <= 0) return;
  activate();
  launch_relu(n, x, stream());
}

}  // namespace gptqd::cuda
