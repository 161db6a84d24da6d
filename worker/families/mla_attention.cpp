// Multi-head latent attention as transformers 5.25's DeepseekV3Attention computes it (eager):
//   q = q_b(rmsnorm(q_a(x)))  or  q_proj(x)                 [tokens, heads, nope + rope]
//   [c, k_rope] = kv_a_proj_with_mqa(x);  [k_nope, v] = kv_b(rmsnorm(c))   per head
//   q_rope, k_rope rotated (k_rope once, shared by every head);  k = [k_nope, k_rope]
//   ctx = softmax(scale q k^T, causal) v;  h += o(ctx)
// The q_a / kv_a norms use RMSNorm's default eps 1e-6 (transformers builds them without
// config.rms_norm_eps). The rotation with rope_interleave takes the rope dims in pairs (x0, x1),
// (x2, x3), ... and writes them back de-interleaved ([even rotated, odd rotated], as
// apply_rotary_pos_emb_interleave does): q and k get the same permutation, so q.k is that of the
// interleaved rotation. Here the pairs are gathered with copy_2d into the halves layout that
// Backend::rope rotates. Attention runs with one head width D = max(nope + rope, v) for q, k and
// v (zero columns added to the narrower: they change no dot product and give zero context
// columns, dropped after).
#include <algorithm>
#include <cmath>

#include "base/check.h"
#include "worker/families/deepseek_forward.h"
#include "worker/families/deepseek_rope.h"
#include "worker/families/family_forward.h"
#include "worker/families/rope.h"

namespace gptqd {
namespace {

// RMSNorm's default eps: what transformers gives q_a_layernorm and kv_a_layernorm.
constexpr float kLatentNormEps = 1e-6f;

// The cos/sin tables [seq, rope / 2] times the attention factor, computed once per length.
void ensure_mla_rope(Backend& be, const ModelSpec& d, int64_t seq, BlockWorkspace& ws) {
  if (ws.rope_seq == seq) return;
  std::vector<float> cos, sin;
  rope_tables(mla_inv_freq(d.config), seq, cos, sin);
  const float f = static_cast<float>(mla_attention_factor(d.config));
  for (float& x : cos) x *= f;  // torch: emb.cos() * attention_scaling, fp32
  for (float& x : sin) x *= f;
  ws.rope_cos = Buffer(be, cos);
  ws.rope_sin = Buffer(be, sin);
  ws.rope_seq = seq;
}

// Rotates, in place, `dim` dims starting at x in each of tokens * heads rows of stride ld (a
// token's heads consecutive): gathered into tmp [tokens, heads * dim] (interleaved pairs into
// halves), rotated by Backend::rope, written back.
void rotate(Backend& be, const BlockWorkspace& ws, int64_t tokens, int64_t seq, int64_t heads,
            int64_t dim, bool interleaved, float* x, int64_t ld, float* tmp) {
  const int64_t rows = tokens * heads, half = dim / 2;
  if (interleaved) {
    for (int64_t i = 0; i < half; ++i) {
      be.copy_2d(rows, 1, x + 2 * i, ld, tmp + i, dim);
      be.copy_2d(rows, 1, x + 2 * i + 1, ld, tmp + half + i, dim);
    }
  } else {
    be.copy_2d(rows, dim, x, ld, tmp, dim);
  }
  be.rope(tokens, seq, heads, dim, tmp, ws.rope_cos.data(), ws.rope_sin.data());
  be.copy_2d(rows, dim, tmp, dim, x, ld);
}

// dst [rows, ldd] = src [rows, cols] (row stride lds) with the columns past cols zero.
void copy_padded(Backend& be, int64_t rows, int64_t cols, const float* src, int64_t lds, float* dst,
                 int64_t ldd) {
  if (cols < ldd) be.fill(dst, 0.0f, rows * ldd);
  be.copy_2d(rows, cols, src, lds, dst, ldd);
}

}  // namespace

int64_t mla_attention_width(const ModelSpec& d) {
  const MlaConfig& m = d.config.mla;
  return std::max(m.qk_head_dim(), m.v_head_dim);
}

bool mla_attention(Backend& be, const ModelSpec& d, const BlockWeights& w, int64_t batch,
                   int64_t seq, float* h, BlockWorkspace& ws, const LinearCapture& capture,
                   int stop_after, int start_after, const DeepseekRules& rules) {
  const MlaConfig& m = d.config.mla;
  const int64_t tokens = batch * seq, hd = d.hidden, heads = d.n_head;
  const int64_t nope = m.qk_nope_head_dim, rope = m.qk_rope_head_dim, vd = m.v_head_dim;
  const int64_t lat = m.kv_lora_rank, qk = m.qk_head_dim(), dw = mla_attention_width(d);
  const bool lora = m.q_lora_rank > 0;
  // Norms and linears in the declaration's order (io/model/families/deepseek.cpp).
  const int q_a_norm = 2, kv_a_norm = lora ? 3 : 2;
  const int q_first = 0, kv_a = 1, q_b = lora ? 2 : -1, kv_b = lora ? 3 : 2, o = kv_b + 1;
  auto buf = [&](DeepseekBuf b) { return ws.bufs[b].data(); };
  float* a = buf(kDsA);
  float* qa = buf(kDsQA);
  float* kvlat = buf(kDsKvLat);
  float* kpe = buf(kDsKPe);
  float* ctx = buf(kDsCtx);
  auto captured = [&](int group, int input, const float* x) {
    if (capture) capture(input, x, tokens, batch);
    return stop_after == group;
  };

  if (start_after < 0) {
    be.rms_norm(tokens, hd, h, w.norms[0].data(), d.norm_eps, a);
    if (captured(0, 0, a)) return true;
  }
  if (start_after < 1) {
    float* kva = buf(kDsKvA);
    if (lora) {
      linear_forward(be, w.linears[q_first], tokens, a, qa);
      be.rms_norm(tokens, m.q_lora_rank, qa, w.norms[q_a_norm].data(), kLatentNormEps, qa);
    }
    linear_forward(be, w.linears[kv_a], tokens, a, kva);
    be.copy_2d(tokens, lat, kva, lat + rope, kvlat, lat);
    be.rms_norm(tokens, lat, kvlat, w.norms[kv_a_norm].data(), kLatentNormEps, kvlat);
    be.copy_2d(tokens, rope, kva + lat, lat + rope, kpe, rope);
    if (capture && lora) capture(d.linears[q_b].input, qa, tokens, batch);
    if (captured(1, d.linears[kv_b].input, kvlat)) return true;
  }
  if (start_after < 2) {
    float* qp = buf(kDsQp);
    float* kp = buf(kDsKp);
    float* vp = buf(kDsVp);
    float* ctxp = buf(kDsCtxP);
    float* kvb = buf(kDsKvB);
    float* tmp = buf(kDsRope);
    ensure_mla_rope(be, d, seq, ws);
    const bool interleaved =
        rules.rope == DeepseekRules::Rope::kFlippedLayout ? !m.rope_interleave : m.rope_interleave;
    // q, through ctxp as scratch, into its padded heads.
    linear_forward(be, w.linears[lora ? q_b : q_first], tokens, lora ? qa : a, ctxp);
    copy_padded(be, tokens * heads, qk, ctxp, qk, qp, dw);
    linear_forward(be, w.linears[kv_b], tokens, kvlat, kvb);
    copy_padded(be, tokens * heads, nope, kvb, nope + vd, kp, dw);
    copy_padded(be, tokens * heads, vd, kvb + nope, nope + vd, vp, dw);
    if (rules.rope == DeepseekRules::Rope::kOnNopePart) {
      for (int64_t x = 0; x < heads; ++x)
        be.copy_2d(tokens, rope, kpe, rope, kp + x * dw + nope, heads * dw);
      rotate(be, ws, tokens, seq, heads, rope, interleaved, qp, dw, tmp);
      rotate(be, ws, tokens, seq, heads, rope, interleaved, kp, dw, tmp);
    } else {
      rotate(be, ws, tokens, seq, heads, rope, interleaved, qp + nope, dw, tmp);
      rotate(be, ws, tokens, seq, 1, rope, interleaved, kpe, rope, tmp);
      for (int64_t x = 0; x < heads; ++x)
        be.copy_2d(tokens, rope, kpe, rope, kp + x * dw + nope, heads * dw);
    }
    const float scale = static_cast<float>(mla_softmax_scale(d.config));
    be.attention(batch, seq, heads, heads, dw, qp, kp, vp, scale, ctxp);
    be.copy_2d(tokens * heads, vd, ctxp, dw, ctx, vd);
    if (captured(2, d.linears[o].input, ctx)) return true;
  }
  if (start_after < 3) {
    float* out = buf(kDsOut);
    linear_forward(be, w.linears[o], tokens, ctx, out);
    be.add(tokens * hd, out, h);
  }
  return false;
}

}  // namespace gptqd
