// CudaBackend::layer_norm: one thread block per row, the CPU twin's two-pass
// arithmetic (mean, then the mean of squared deviations, both summed in
// double; biased variance, eps inside the square root; the rest in fp32).
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_launch.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace gptqd::cuda {
namespace {

__global__ void layer_norm_kernel(int64_t cols, const float* x, const float* gamma,
                                  const float* beta, float eps, float* y) {
  __shared__ double scratch[kWarpSize];
  const float* xr = x + static_cast<int64_t>(blockIdx.x) * cols;
  float* yr = y + static_cast<int64_t>(blockIdx.x) * cols;

  double sum = 0;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) sum += xr[c];
  const float mean = static_cast<float>(block_sum(sum, scratch) / cols);
  double sq = 0;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    const float d = xr[c] - mean;
    sq += static_cast<double>(d) * d;
  }
  const float var = static_cast<float>(block_sum(sq, scratch) / cols);
  const float rstd = 1.0f / sqrtf(var + eps);
  // y may alias x: every read of the row above finished at block_sum's
  // barriers, and here each thread reads its element before writing it.
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
    yr[c] = (xr[c] - mean) * rstd * gamma[c] + beta[c];
}

}  // namespace

void launch_layer_norm(int64_t rows, int64_t cols, const float* x, const float* gamma,
                       const float* beta, float eps, float* y, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return;
  GPTQD_CHECK(rows <= 0x7fffffff, "layer_norm of {} rows exceeds the grid", rows);
  layer_norm_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(cols, x, gamma, beta, eps,
                                                                          y);
  GPTQD_CUDA_LAUNCH_CHECK(layer_norm_kernel);
}

void CudaBackend::layer_norm(int64_t rows, int64_t cols, const float* x, const float* gamma,
                             const float* beta, float eps, float* y) {
  if (rows <= 0 || cols <= 0) return;
  activate();
  launch_layer_norm(rows, cols, x, gamma, beta, eps, y, stream());
}

}  // namespace gptqd::cuda
