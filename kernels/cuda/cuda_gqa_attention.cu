// CudaBackend::attention: causal self-attention with grouped KV heads (Llama,
// Mistral, Qwen; OPT is the case n_kv_head == n_head), as the CPU twin
// (kernels/cpu/cpu_attention.cpp) computes it, batched over heads like
// alibi_attention (cuda_attention.cu):
//   S_h = scale * Q_h K_g^T        strided-batched cuBLAS GEMMs
//   mask j > i; softmax over j in fp32           (own kernel)
//   ctx_h = P_h V_g                strided-batched cuBLAS GEMMs
// per sequence and chunk of query heads, where g = h / rep, rep = n_head /
// n_kv_head. Q_h and ctx_h are row-major [seq, head_dim] views with leading
// dimension n_head * head_dim, head_dim apart from one head to the next; K_g
// and V_g have leading dimension n_kv_head * head_dim. A strided batch needs
// one constant stride per operand, so a chunk is split into runs of query
// heads that share a KV head (K and V stride 0: the rep heads of a group read
// the same K_g, V_g; cuBLAS allows a zero batch stride on an input, not on
// C); without grouping (rep == 1) the whole chunk is one run with K and V
// stride head_dim. Masked weights are exactly zero, so the second GEMM over
// all seq keys adds nothing for them. The scores of one chunk are
// attention_head_chunk(seq, n_head) heads of seq x seq fp32
// (kernels/attention_scratch.h), the size the memory model counts.
//
// The handle's math mode is CUBLAS_DEFAULT_MATH (cuda_resources.h): the GEMMs
// are exact fp32, no TF32.
#include <algorithm>
#include <cmath>

#include "kernels/attention_scratch.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_launch.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace gptqd::cuda {
namespace {

// One thread block per score row (head h of the chunk, query i): the CPU's
// steps (max, exp(s - max) summed in fp32, times 1 / sum) over j <= i, exact
// zeros past i.
__global__ void causal_softmax_kernel(int64_t seq, float* s) {
  __shared__ float scratch[kWarpSize];
  const int64_t row = blockIdx.x;
  const int64_t i = row % seq;
  float* p = s + row * seq;

  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j <= i; j += blockDim.x) mx = fmaxf(mx, p[j]);
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

// Threads per score row: the row rounded up to whole warps, at most kThreads
// (short sequences would leave most of a 256-thread block idle).
int softmax_threads(int64_t seq) {
  const int64_t warps = (seq + kWarpSize - 1) / kWarpSize;
  return static_cast<int>(std::clamp<int64_t>(warps * kWarpSize, kWarpSize, kThreads));
}

}  // namespace

void launch_causal_softmax(int64_t heads, int64_t seq, float* s, cudaStream_t stream) {
  if (heads <= 0 || seq <= 0) return;
  const int64_t rows = heads * seq;
  GPTQD_CHECK(rows <= 0x7fffffff, "softmax over {} rows exceeds the grid", rows);
  causal_softmax_kernel<<<static_cast<unsigned>(rows), softmax_threads(seq), 0, stream>>>(seq, s);
  GPTQD_CUDA_LAUNCH_CHECK(causal_softmax_kernel);
}

void CudaBackend::attention(int64_t batch, int64_t seq, int64_t n_head, int64_t n_kv_head,
                            int64_t head_dim, const float* q, const float* k, const float* v,
                            float scale, float* ctx) {
  if (batch <= 0 || seq <= 0 || n_head <= 0 || head_dim <= 0 || n_kv_head <= 0) return;
  GPTQD_CHECK(n_head % n_kv_head == 0,
              "attention: {} query heads are not a multiple of {} KV heads", n_head, n_kv_head);
  activate();
  const int64_t rep = n_head / n_kv_head;
  const int64_t ld_q = n_head * head_dim;  // also ctx's
  const int64_t ld_kv = n_kv_head * head_dim;
  const int64_t kv_head_stride = rep == 1 ? head_dim : 0;
  const int64_t score_stride = seq * seq;

  const int64_t chunk = attention_head_chunk(seq, n_head);
  DeviceArray<float> scores(chunk * score_stride, stream());

  for (int64_t b = 0; b < batch; ++b) {
    const float* q_b = q + b * seq * ld_q;
    const float* k_b = k + b * seq * ld_kv;
    const float* v_b = v + b * seq * ld_kv;
    float* ctx_b = ctx + b * seq * ld_q;
    for (int64_t h0 = 0; h0 < n_head; h0 += chunk) {
      const int64_t h_end = std::min(h0 + chunk, n_head);
      // Runs [h, next) of the chunk with one stride per operand: the query
      // heads of one KV head, or the whole chunk without grouping.
      auto run_end = [&](int64_t h) {
        return rep == 1 ? h_end : std::min(h_end, (h / rep + 1) * rep);
      };
      for (int64_t h = h0, next; h < h_end; h = next) {
        next = run_end(h);
        gemm_rowmajor(cublas_.get(), false, true, seq, seq, head_dim, scale, q_b + h * head_dim,
                      ld_q, head_dim, k_b + (h / rep) * head_dim, ld_kv, kv_head_stride, 0.0f,
                      scores.get() + (h - h0) * score_stride, seq, score_stride, next - h);
      }
      launch_causal_softmax(h_end - h0, seq, scores.get(), stream());
      for (int64_t h = h0, next; h < h_end; h = next) {
        next = run_end(h);
        gemm_rowmajor(cublas_.get(), false, false, seq, head_dim, seq, 1.0f,
                      scores.get() + (h - h0) * score_stride, seq, score_stride,
                      v_b + (h / rep) * head_dim, ld_kv, kv_head_stride, 0.0f, ctx_b + h * head_dim,
                      ld_q, head_dim, next - h);
      }
    }
  }
}

}  // namespace gptqd::cuda
