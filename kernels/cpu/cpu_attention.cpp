// CpuBackend: BLOOM's causal self-attention with ALiBi, one (sequence, head)
// at a time, by blocks of query rows: two sgemms (scores, context) around an fp32 softmax. The
// (sequence, head) pairs run on the backend's threads, each with its own score matrix. This follows
// transformers' BloomAttention: scores = alibi + q k^T / sqrt(head_dim), the
// alibi bias being slope_h * key_position (softmax is invariant to the
// per-query shift that a relative position would add), causal mask, softmax
// in fp32, context = P v.
#include <algorithm>
#include <cmath>
#include <vector>

#include "base/check.h"
#include "kernels/alibi.h"
#include "kernels/attention_scratch.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/cpu_parallel.h"

namespace gptqd {
namespace {

// Rows i0 <= i < i1 of the scores become softmax(p[i, 0..i] + slope * key position) in fp32,
// the masked part up to column i1 exactly zero (slope 0: plain causal attention). `p` holds row
// i0 of the scores, rows `ld` apart.
void causal_softmax(float* p, int64_t ld, int64_t i0, int64_t i1, float slope) {
  for (int64_t i = i0; i < i1; ++i) {
    float* row = p + (i - i0) * ld;
    float mx = -INFINITY;
    for (int64_t j = 0; j <= i; ++j) {
      row[j] += slope * static_cast<float>(j);
      mx = std::max(mx, row[j]);
    }
    float sum = 0;
    for (int64_t j = 0; j <= i; ++j) {
      row[j] = std::exp(row[j] - mx);
      sum += row[j];
    }
    const float inv_sum = 1.0f / sum;
    for (int64_t j = 0; j <= i; ++j) row[j] *= inv_sum;
    std::fill(row + i + 1, row + i1, 0.0f);  // masked: exactly zero weight
  }
}

// Causal attention by blocks of query rows: rows i0..i1 see keys 0..i1 only, so their scores
// and their context take i1 columns, not seq: about half the work of the full square at 512
// tokens and more. The blocks depend on the shape alone (the same sums for any thread count).
constexpr int64_t kQueryBlock = 128;

// scores(i0, i1, p) writes rows i0..i1 of the scaled q k^T, columns 0..i1, at p (row stride
// seq); context(i0, i1, p) writes those rows' context from the probabilities there.
template <typename Scores, typename Context>
void causal_blocks(float* p, int64_t seq, float slope, Scores&& scores, Context&& context) {
  for (int64_t i0 = 0; i0 < seq; i0 += kQueryBlock) {
    const int64_t i1 = std::min(seq, i0 + kQueryBlock);
    scores(i0, i1, p);
    causal_softmax(p, seq, i0, i1, slope);
    context(i0, i1, p);
  }
}

// Runs head(p, b, h) for every sequence b < batch and head h < n_head on the backend's threads,
// p a seq x seq score matrix of the worker's own. Workers are at most attention_head_chunk:
// the score memory the memory model counts (kernels/attention_scratch.h).
template <typename Head>
void for_each_head(int threads, int64_t batch, int64_t seq, int64_t n_head, int64_t head_dim,
                   Head&& head) {
  const int64_t pairs = batch * n_head;
  const int workers = static_cast<int>(
      std::min<int64_t>(cpu::parallel_parts(pairs, threads, 2 * seq * seq * head_dim),
                        attention_head_chunk(seq, n_head)));
  std::vector<std::vector<float>> probs(static_cast<size_t>(std::max(workers, 1)));
  cpu::parallel_tasks(pairs, workers, [&](int w, int64_t i) {
    std::vector<float>& p = probs[static_cast<size_t>(w)];
    if (p.empty()) p.resize(static_cast<size_t>(seq * seq));
    head(p.data(), i / n_head, i % n_head);
  });
}

}  // namespace

void CpuBackend::alibi_attention(int64_t batch, int64_t seq, int64_t n_head, int64_t head_dim,
                                 const float* qkv, float* ctx) {
  if (batch <= 0 || seq <= 0 || n_head <= 0 || head_dim <= 0) return;
  const int64_t ld_qkv = n_head * 3 * head_dim;  // per token: [n_head, 3, head_dim]
  const int64_t ld_ctx = n_head * head_dim;
  const float inv_norm = 1.0f / std::sqrt(static_cast<float>(head_dim));
  for_each_head(threads_, batch, seq, n_head, head_dim, [&](float* p, int64_t b, int64_t h) {
    const float* q = qkv + b * seq * ld_qkv + h * 3 * head_dim;
    const float* k = q + head_dim;
    const float* v = q + 2 * head_dim;
    const float slope = alibi_slope(static_cast<int>(h), static_cast<int>(n_head));
    float* c = ctx + b * seq * ld_ctx + h * head_dim;
    causal_blocks(
        p, seq, slope,
        [&](int64_t i0, int64_t i1, float* s) {
          gemm(false, true, i1 - i0, i1, head_dim, inv_norm, q + i0 * ld_qkv, ld_qkv, k, ld_qkv,
               0.0f, s, seq);
        },
        [&](int64_t i0, int64_t i1, const float* s) {
          gemm(false, false, i1 - i0, head_dim, i1, 1.0f, s, seq, v, ld_qkv, 0.0f, c + i0 * ld_ctx,
               ld_ctx);
        });
  });
}

// Grouped-KV causal attention (Llama, Mistral, Qwen, OPT): as transformers' eager attention,
// scores = scale * q k^T, causal mask, softmax in fp32, context = P v; query head h reads KV
// head h / (n_head / n_kv_head) (repeat_kv).
void CpuBackend::attention(int64_t batch, int64_t seq, int64_t n_head, int64_t n_kv_head,
                           int64_t head_dim, const float* q, const float* k, const float* v,
                           float scale, float* ctx) {
  if (batch <= 0 || seq <= 0 || n_head <= 0 || head_dim <= 0 || n_kv_head <= 0) return;
  GPTQD_CHECK(n_head % n_kv_head == 0,
              "attention: {} query heads are not a multiple of {} KV heads", n_head, n_kv_head);
  const int64_t ld_q = n_head * head_dim, ld_kv = n_kv_head * head_dim;
  const int64_t rep = n_head / n_kv_head;
  for_each_head(threads_, batch, seq, n_head, head_dim, [&](float* p, int64_t b, int64_t h) {
    const float* qh = q + b * seq * ld_q + h * head_dim;
    const float* kh = k + b * seq * ld_kv + (h / rep) * head_dim;
    const float* vh = v + b * seq * ld_kv + (h / rep) * head_dim;
    float* c = ctx + b * seq * ld_q + h * head_dim;
    causal_blocks(
        p, seq, 0.0f,
        [&](int64_t i0, int64_t i1, float* s) {
          gemm(false, true, i1 - i0, i1, head_dim, scale, qh + i0 * ld_q, ld_q, kh, ld_kv, 0.0f, s,
               seq);
        },
        [&](int64_t i0, int64_t i1, const float* s) {
          gemm(false, false, i1 - i0, head_dim, i1, 1.0f, s, seq, vh, ld_kv, 0.0f, c + i0 * ld_q,
               ld_q);
        });
  });
}

}  // namespace gptqd
