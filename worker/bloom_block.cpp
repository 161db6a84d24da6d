#include "worker/bloom_block.h"

#include <algorithm>

#include "kernels/check.h"

namespace gptqd {
namespace {

// y[T, out] = x[T, in] W^T + b
void linear(Backend& be, const LinearWeights& l, int64_t tokens, const float* x, float* y) {
  be.gemm(false, true, tokens, l.out, l.in, 1.0f, x, l.in, l.w.data(), l.in, 0.0f, y, l.out);
  be.add_bias(tokens, l.out, l.b.data(), y);
}

}  // namespace

BlockWorkspace::BlockWorkspace(Backend& be, const BloomDims& d, int64_t max_tokens)
    : a(be, max_tokens * d.hidden),
      qkv(be, max_tokens * 3 * d.hidden),
      ctx(be, max_tokens * d.hidden),
      attn(be, max_tokens * d.hidden),
      m(be, max_tokens * d.hidden),
      f(be, max_tokens * d.ffn),
      max_tokens_(max_tokens) {}

void block_forward(Backend& be, const BloomDims& d, const BlockWeights& w, int64_t batch,
                   int64_t seq, float* h, BlockWorkspace& ws, const LinearCapture& capture,
                   int stop_after) {
  const int64_t tokens = batch * seq;
  GPTQD_CHECK(tokens <= ws.max_tokens(), "micro-batch of {} tokens exceeds workspace of {}", tokens,
              ws.max_tokens());
  const int64_t hd = d.hidden;
  auto captured = [&](int idx, const float* x) {
    if (capture) capture(idx, x, tokens, batch);
    return stop_after == idx;
  };

  // Attention: a = LN_in(h); qkv = a Wqkv^T + b; ctx = attn(qkv); h = residual + ctx Wd^T + b
  be.layer_norm(tokens, hd, h, w.ln_in_w.data(), w.ln_in_b.data(), d.ln_eps, ws.a.data());
  if (captured(kQkv, ws.a.data())) return;
  linear(be, w.linears[kQkv], tokens, ws.a.data(), ws.qkv.data());
  be.alibi_attention(batch, seq, d.n_head, d.head_dim, ws.qkv.data(), ws.ctx.data());
  if (captured(kDense, ws.ctx.data())) return;
  linear(be, w.linears[kDense], tokens, ws.ctx.data(), ws.attn.data());
  // residual is h, or LN_in(h) with apply_residual_connection_post_layernorm
  if (d.post_ln_residual) be.copy(h, ws.a.data(), tokens * hd);
  be.add(tokens * hd, ws.attn.data(), h);

  // MLP: m = LN_post(h); h = residual + gelu(m W4h^T + b) W4hh^T + b
  be.layer_norm(tokens, hd, h, w.ln_post_w.data(), w.ln_post_b.data(), d.ln_eps, ws.m.data());
  if (captured(kH4h, ws.m.data())) return;
  linear(be, w.linears[kH4h], tokens, ws.m.data(), ws.f.data());
  be.gelu(tokens * d.ffn, ws.f.data());
  if (captured(kFourHh, ws.f.data())) return;
  linear(be, w.linears[kFourHh], tokens, ws.f.data(), ws.attn.data());
  if (d.post_ln_residual) be.copy(h, ws.m.data(), tokens * hd);
  be.add(tokens * hd, ws.attn.data(), h);
}

void block_forward_all(Backend& be, const BloomDims& d, const BlockWeights& w, int64_t nseq,
                       int64_t seq, int64_t micro, const float* in, float* out, BlockWorkspace& ws,
                       const LinearCapture& capture, int stop_after) {
  GPTQD_CHECK(micro > 0, "micro-batch size must be positive");
  const int64_t row = seq * d.hidden;
  for (int64_t s = 0; s < nseq; s += micro) {
    const int64_t b = std::min(micro, nseq - s);
    float* dst = out + s * row;
    if (dst != in + s * row) be.copy(dst, in + s * row, b * row);
    block_forward(be, d, w, b, seq, dst, ws, capture, stop_after);
  }
}

}  // namespace gptqd
