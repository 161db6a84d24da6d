// BLOOM's forward (DESIGN.md §5): LayerNorm, fused qkv with ALiBi attention, GELU MLP.
#include "base/check.h"
#include "worker/families/family_forward.h"

namespace gptqd {
namespace {

// spec.block_norms order (io/model/families/bloom.cpp) and the linears'.
enum Norm { kInW, kInB, kPostW, kPostB };
enum Linear { kQkv, kDense, kH4h, kFourHh };
// BlockWorkspace buffers.
enum Buf { kA, kQkvOut, kCtx, kAttn, kM, kF };

std::vector<int64_t> workspace(const ModelSpec& d) {
  return {d.hidden, 3 * d.hidden, d.hidden, d.hidden, d.hidden, d.ffn};
}

void block(Backend& be, const ModelSpec& d, const BlockWeights& w, int64_t batch, int64_t seq,
           float* h, BlockWorkspace& ws, const LinearCapture& capture, int stop_after,
           int start_after) {
  const int64_t tokens = batch * seq;
  const int64_t hd = d.hidden;
  const bool post_ln_residual = d.config.apply_residual_connection_post_layernorm;
  float* a = ws.bufs[kA].data();
  float* m = ws.bufs[kM].data();
  float* attn = ws.bufs[kAttn].data();
  float* f = ws.bufs[kF].data();
  auto captured = [&](int group, const float* x) {
    if (capture) capture(group, x, tokens, batch);
    return stop_after == group;
  };

  // Attention: a = LN_in(h); qkv = a Wqkv^T + b; ctx = attn(qkv); h = residual + ctx Wd^T + b.
  // A resumed forward (start_after, worker/block_forward.h) skips what comes before its point.
  if (start_after < kQkv) {
    be.layer_norm(tokens, hd, h, w.norms[kInW].data(), w.norms[kInB].data(), d.norm_eps, a);
    if (captured(kQkv, a)) return;
  }
  if (start_after < kDense) {
    linear_forward(be, w.linears[kQkv], tokens, a, ws.bufs[kQkvOut].data());
    be.alibi_attention(batch, seq, d.n_head, d.head_dim, ws.bufs[kQkvOut].data(),
                       ws.bufs[kCtx].data());
    if (captured(kDense, ws.bufs[kCtx].data())) return;
  }
  if (start_after < kH4h) {
    linear_forward(be, w.linears[kDense], tokens, ws.bufs[kCtx].data(), attn);
    // residual is h, or LN_in(h) with apply_residual_connection_post_layernorm
    if (post_ln_residual) be.copy(h, a, tokens * hd);
    be.add(tokens * hd, attn, h);

    // MLP: m = LN_post(h); h = residual + gelu(m W4h^T + b) W4hh^T + b
    be.layer_norm(tokens, hd, h, w.norms[kPostW].data(), w.norms[kPostB].data(), d.norm_eps, m);
    if (captured(kH4h, m)) return;
  }
  if (start_after < kFourHh) {
    linear_forward(be, w.linears[kH4h], tokens, m, f);
    be.gelu(tokens * d.ffn, f);
    if (captured(kFourHh, f)) return;
  }
  linear_forward(be, w.linears[kFourHh], tokens, f, attn);
  if (post_ln_residual) be.copy(h, m, tokens * hd);
  be.add(tokens * hd, attn, h);
}

// The buffers a forward resumed after `group`'s capture reads besides h: the group's input, and
// the layer norm's output that becomes the residual under apply_residual_connection_post_layernorm.
bool resume_points(const ModelSpec& d, int group, std::vector<int>* live) {
  static const int kInput[] = {kA, kCtx, kM, kF};
  static const int kNormed[] = {kA, kA, kM, kM};
  *live = {kInput[group]};
  if (d.config.apply_residual_connection_post_layernorm && kNormed[group] != kInput[group])
    live->push_back(kNormed[group]);
  return true;
}

// h = LayerNorm_emb(Embedding(tokens))
void embed(Backend& be, const ModelSpec& d, const EmbeddingWeights& e,
           const std::vector<int32_t>& tokens, int64_t, float* h) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  for (int64_t t = 0; t < n; ++t) {
    be.copy(h + t * d.hidden, e.table().data() + static_cast<int64_t>(tokens[t]) * d.hidden,
            d.hidden);
  }
  be.layer_norm(n, d.hidden, h, e.tensors[1].data(), e.tensors[2].data(), d.norm_eps, h);
}

void final_norm(Backend& be, const ModelSpec& d, const FinalNormWeights& f, int64_t n,
                const float* h, float* out) {
  be.layer_norm(n, d.hidden, h, f.norm[0].data(), f.norm[1].data(), d.norm_eps, out);
}

}  // namespace

const FamilyForward& bloom_forward() {
  static const FamilyForward kForward{workspace, block, resume_points, embed, final_norm};
  return kForward;
}

}  // namespace gptqd
