// CudaBackend::rms_norm: one thread block per row, the CPU twin's arithmetic
// (kernels/cpu/cpu_llama_ops.cpp): the sum of squares in double, then
// rms_inverse (kernels/nn_math.h) and y = gamma * (x * inv) in fp32. Only the
// order of the double sum differs from the CPU, so the results agree to the
// last bit or nearly.
#include <algorithm>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_launch.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/nn_math.h"

namespace gptqd::cuda {
namespace {

__global__ void rms_norm_kernel(int64_t cols, const float* x, const float* gamma, float eps,
                                float* y) {
  __shared__ double scratch[kWarpSize];
  const float* xr = x + static_cast<int64_t>(blockIdx.x) * cols;
  float* yr = y + static_cast<int64_t>(blockIdx.x) * cols;

  double sq = 0;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) sq += static_cast<double>(xr[c]) * xr[c];
  const float inv = rms_inverse(block_sum(sq, scratch), cols, eps);
  // y may alias x: every read of the row above finished at block_sum's
  // barriers, and here each thread reads its element before writing it.
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) yr[c] = gamma[c] * (xr[c] * inv);
}

// Threads per row: the row rounded up to whole warps, at most kThreads. The
// per-head q/k norm of Qwen3 has rows of head_dim (64-128) values, where a
// 256-thread block would leave half of its threads idle.
int rms_norm_threads(int64_t cols) {
  const int64_t warps = (cols + kWarpSize - 1) / kWarpSize;
  return static_cast<int>(std::clamp<int64_t>(warps * kWarpSize, kWarpSize, kThreads));
}

}  // namespace

void launch_rms_norm(int64_t rows, int64_t cols, const float* x, const float* gamma, float eps,
                     float* y, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return;
  GPTQD_CHECK(rows <= 0x7fffffff, "rms_norm of {} rows exceeds the grid", rows);
  rms_norm_kernel<<<static_cast<unsigned>(rows), rms_norm_threads(cols), 0, stream>>>(
      cols, x, gamma, eps, y);
  GPTQD_CUDA_LAUNCH_CHECK(rms_norm_kernel);
}

void CudaBackend::rms_norm(int64_t rows, int64_t cols, const float* x, const float* gamma,
                           float eps, float* y) {
  if (rows <= 0 || cols <= 0) return;
  activate();
  launch_rms_norm(rows, cols, x, gamma, eps, y, stream());
}

}  // namespace gptqd::cuda
