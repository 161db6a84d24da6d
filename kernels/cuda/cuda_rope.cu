// CudaBackend::rope: a grid-stride loop over the rotary pairs of x, one
// thread per (token, head, i < half), each applying nn_math.h's rope_pair with
// the table entries of the token's position. The arithmetic is the CPU twin's
// (kernels/cpu/cpu_llama_ops.cpp), and with --fmad=false no product is fused,
// so the results are identical.
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_launch.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/nn_math.h"

namespace gptqd::cuda {
namespace {

// Pair index k = (token * n_heads + head) * half + i; consecutive threads take
// consecutive i, so the loads of x[i] and x[i + half] are both coalesced.
__global__ void rope_kernel(int64_t pairs, int64_t seq, int64_t n_heads, int64_t head_dim, float* x,
                            const float* cos, const float* sin) {
  const int64_t half = head_dim / 2;
  for (int64_t k = grid_start(); k < pairs; k += grid_stride()) {
    const int64_t i = k % half;
    const int64_t token_head = k / half;
    const int64_t p = (token_head / n_heads) % seq;
    float* xh = x + token_head * head_dim;
    rope_pair(xh[i], xh[i + half], cos[p * half + i], sin[p * half + i]);
  }
}

}  // namespace

void launch_rope(int64_t tokens, int64_t seq, int64_t n_heads, int64_t head_dim, float* x,
                 const float* cos, const float* sin, cudaStream_t stream) {
  if (tokens <= 0 || seq <= 0 || n_heads <= 0 || head_dim < 2) return;
  const int64_t pairs = tokens * n_heads * (head_dim / 2);
  rope_kernel<<<grid_for(pairs), kThreads, 0, stream>>>(pairs, seq, n_heads, head_dim, x, cos, sin);
  GPTQD_CUDA_LAUNCH_CHECK(rope_kernel);
}

void CudaBackend::rope(int64_t tokens, int64_t seq, int64_t n_heads, int64_t head_dim, float* x,
                       const float* cos, const float* sin) {
  if (tokens <= 0 || seq <= 0 || n_heads <= 0 || head_dim < 2) return;
  activate();
  launch_rope(tokens, seq, n_heads, head_dim, x, cos, sin, stream());
}

}  // namespace gptqd::cuda
