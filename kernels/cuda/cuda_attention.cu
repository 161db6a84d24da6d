// CudaBackend::alibi_attention: BLOOM's causal self-attention with ALiBi, as
// the CPU twin (kernels/cpu/cpu_attention.cpp) computes it, batched over heads:
//   S_h = (Q_h K_h^T) / sqrt(head_dim)     one strided-batched cuBLAS GEMM
//   S_h[i, j] += slope_h * j; mask j > i; softmax over j in fp32   (own kernel)
//   ctx_h = P_h V_h                         one strided-batched cuBLAS GEMM
// per sequence and chunk of heads. In BLOOM's fused layout the heads of one
// token are 3 * head_dim apart (q, k, v of a head are adjacent), so head h's
// Q, K and V are the same row-major [seq, head_dim] view with leading
// dimension n_head * 3 * head_dim at offsets 0, head_dim and 2 * head_dim past
// h * 3 * head_dim: a constant stride between heads, which is what a strided
// batch needs. Masked weights are exactly zero, so the second GEMM over all
// seq keys adds nothing for them. The scores of one chunk of heads are at most
// kMaxScoreBytes (kernels/attention_scratch.h; 112 heads x 2048^2 fp32 would be
// 1.9 GB for BLOOM-176B): the scratch stays bounded whatever seq is.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/alibi.h"
#include "kernels/attention_scratch.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_launch.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace gptqd::cuda {
namespace {

// One thread block per score row (head h of the chunk, query i).
__global__ void alibi_softmax_kernel(int64_t seq, int64_t head0, const float* slopes, float* s) {
  __shared__ float scratch[kWarpSize];
  const int64_t row = blockIdx.x;
  const int64_t i = row % seq;
  const float slope = slopes[head0 + row / seq];
  float* p = s + row * seq;

  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j <= i; j += blockDim.x) {
    const float v = p[j] + slope * static_cast<float>(j);
    p[j] = v;
    mx = fmaxf(mx, v);
  }
  mx = block_max(mx, scratch);
  float sum = 0;
  for (int64_t j = threadIdx.x; j <= i; j += blockDim.x) {
    const float e = expf(p[j] - mx);
    p[j] = e;
    sum += e;
  }
  const float inv_sum = 1.0f / block_sum(sum, scratch);
  for (int64_t j = threadIdx.x; j < seq; j += blockDim.x) p[j] = j <= i ? p[j] * inv_sum : 0.0f;
}

}  // namespace

void launch_alibi_softmax(int64_t heads, int64_t seq, int64_t head0, const float* slopes, float* s,
                          cudaStream_t stream) {
  if (heads <= 0 || seq <= 0) return;
  const int64_t rows = heads * seq;
  GPTQD_CHECK(rows <= 0x7fffffff, "softmax over {} rows exceeds the grid", rows);
  alibi_softmax_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(seq, head0, slopes, s);
  GPTQD_CUDA_LAUNCH_CHECK(alibi_softmax_kernel);
}

void CudaBackend::alibi_attention(int64_t batch, int64_t seq, int64_t n_head, int64_t head_dim,
                                  const float* qkv, float* ctx) {
  if (batch <= 0 || seq <= 0 || n_head <= 0 || head_dim <= 0) return;
  activate();
  const int64_t ld_qkv = n_head * 3 * head_dim;
  const int64_t ld_ctx = n_head * head_dim;
  const int64_t head_stride = 3 * head_dim;
  const int64_t score_stride = seq * seq;
  const float inv_norm = 1.0f / std::sqrt(static_cast<float>(head_dim));  // as the CPU twin

  // Slopes from the host code path (kernels/alibi.h), so they are the CPU's bits.
  std::vector<float> slopes(static_cast<size_t>(n_head));
  for (int64_t h = 0; h < n_head; ++h)
    slopes[h] = alibi_slope(static_cast<int>(h), static_cast<int>(n_head));
  const DeviceArray<float> slopes_dev = upload_array(slopes.data(), n_head);

  const int64_t chunk = attention_head_chunk(seq, n_head);
  DeviceArray<float> scores(chunk * score_stride, stream());

  for (int64_t b = 0; b < batch; ++b) {
    const float* qkv_b = qkv + b * seq * ld_qkv;
    float* ctx_b = ctx + b * seq * ld_ctx;
    for (int64_t h0 = 0; h0 < n_head; h0 += chunk) {
      const int64_t heads = std::min(chunk, n_head - h0);
      const float* q = qkv_b + h0 * head_stride;
      const float* k = q + head_dim;
      const float* v = q + 2 * head_dim;
      gemm_rowmajor(cublas_.get(), false, true, seq, seq, head_dim, inv_norm, q, ld_qkv,
                    head_stride, k, ld_qkv, head_stride, 0.0f, scores.get(), seq, score_stride,
                    heads);
      launch_alibi_softmax(heads, seq, h0, slopes_dev.get(), scores.get(), stream());
      gemm_rowmajor(cublas_.get(), false, false, seq, head_dim, seq, 1.0f, scores.get(), seq,
                    score_stride, v, ld_qkv, head_stride, 0.0f, ctx_b + h0 * head_dim, ld_ctx,
                    head_dim, heads);
    }
  }
}

}  // namespace gptqd::cuda
