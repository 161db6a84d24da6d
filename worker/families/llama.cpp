// The Llama family's forward (DESIGN.md §5b; Llama, Mistral, Qwen2/2.5, Qwen3, SmolLM2):
//   h += o(attn(rope(q(rmsnorm(h))), rope(k(.)), v(.)))      grouped KV heads, q/k biases
//                                                             optional, Qwen3 q/k RMSNorm per head
//   h += down(silu(gate(rmsnorm(h))) * up(rmsnorm(h)))
#include <cmath>

#include "base/check.h"
#include "worker/families/family_forward.h"
#include "worker/families/llama_attention.h"
#include "worker/families/rope.h"

namespace gptqd {
namespace {

// spec.block_norms order (io/model/families/llama.cpp) and the linears'.
enum Norm { kInputNorm, kPostNorm, kQNorm, kKNorm };
enum Linear { kQ, kK, kV, kO, kGate, kUp, kDown };
enum Group { kQkvGroup, kOGroup, kGateUpGroup, kDownGroup };
// BlockWorkspace buffers.
enum Buf { kA, kQOut, kKOut, kVOut, kCtx, kOut, kGateOut, kUpOut };

std::vector<int64_t> workspace(const ModelSpec& d) {
  const int64_t q = d.n_head * d.head_dim, kv = d.n_kv_head * d.head_dim;
  return {d.hidden, q, kv, kv, q, d.hidden, d.ffn, d.ffn};
}

}  // namespace

// The cos/sin tables for sequences of `seq` tokens, computed once per length.
void ensure_rope(Backend& be, const ModelSpec& d, int64_t seq, BlockWorkspace& ws) {
  if (ws.rope_seq == seq) return;
  std::vector<float> cos, sin;
  rope_tables(rope_inv_freq(d.config, d.head_dim), seq, cos, sin);
  ws.rope_cos = Buffer(be, cos);
  ws.rope_sin = Buffer(be, sin);
  ws.rope_seq = seq;
}

bool llama_attention(Backend& be, const ModelSpec& d, const BlockWeights& w, int64_t batch,
                     int64_t seq, float* h, BlockWorkspace& ws, const LinearCapture& capture,
                     int stop_after, int start_after) {
  const int64_t tokens = batch * seq;
  const int64_t hd = d.hidden;
  float* a = ws.bufs[kA].data();
  float* q = ws.bufs[kQOut].data();
  float* k = ws.bufs[kKOut].data();
  float* v = ws.bufs[kVOut].data();
  float* ctx = ws.bufs[kCtx].data();
  float* out = ws.bufs[kOut].data();
  auto captured = [&](int group, const float* x) {
    if (capture) capture(group, x, tokens, batch);
    return stop_after == group;
  };

  // A resumed forward (start_after, worker/block_forward.h) skips what comes before its point.
  if (start_after < kQkvGroup) {
    be.rms_norm(tokens, hd, h, w.norms[kInputNorm].data(), d.norm_eps, a);
    if (captured(kQkvGroup, a)) return true;
  }
  if (start_after < kOGroup) {
    linear_forward(be, w.linears[kQ], tokens, a, q);
    linear_forward(be, w.linears[kK], tokens, a, k);
    linear_forward(be, w.linears[kV], tokens, a, v);
    if (d.config.qk_norm) {
      be.rms_norm(tokens * d.n_head, d.head_dim, q, w.norms[kQNorm].data(), d.norm_eps, q);
      be.rms_norm(tokens * d.n_kv_head, d.head_dim, k, w.norms[kKNorm].data(), d.norm_eps, k);
    }
    ensure_rope(be, d, seq, ws);
    be.rope(tokens, seq, d.n_head, d.head_dim, q, ws.rope_cos.data(), ws.rope_sin.data());
    be.rope(tokens, seq, d.n_kv_head, d.head_dim, k, ws.rope_cos.data(), ws.rope_sin.data());
    const float scale = 1.0f / std::sqrt(static_cast<float>(d.head_dim));
    be.attention(batch, seq, d.n_head, d.n_kv_head, d.head_dim, q, k, v, scale, ctx);
    if (captured(kOGroup, ctx)) return true;
  }
  if (start_after < kGateUpGroup) {
    linear_forward(be, w.linears[kO], tokens, ctx, out);
    be.add(tokens * hd, out, h);
  }
  return false;
}

namespace {

void block(Backend& be, const ModelSpec& d, const BlockWeights& w, int64_t batch, int64_t seq,
           float* h, BlockWorkspace& ws, const LinearCapture& capture, int stop_after,
           int start_after) {
  const int64_t tokens = batch * seq;
  const int64_t hd = d.hidden;
  float* a = ws.bufs[kA].data();
  float* out = ws.bufs[kOut].data();
  float* gate = ws.bufs[kGateOut].data();
  auto captured = [&](int group, const float* x) {
    if (capture) capture(group, x, tokens, batch);
    return stop_after == group;
  };

  if (llama_attention(be, d, w, batch, seq, h, ws, capture, stop_after, start_after)) return;
  if (start_after < kGateUpGroup) {
    be.rms_norm(tokens, hd, h, w.norms[kPostNorm].data(), d.norm_eps, a);
    if (captured(kGateUpGroup, a)) return;
  }
  if (start_after < kDownGroup) {
    linear_forward(be, w.linears[kGate], tokens, a, gate);
    linear_forward(be, w.linears[kUp], tokens, a, ws.bufs[kUpOut].data());
    be.silu_mul(tokens * d.ffn, gate, ws.bufs[kUpOut].data());
    if (captured(kDownGroup, gate)) return;
  }
  linear_forward(be, w.linears[kDown], tokens, gate, out);
  be.add(tokens * hd, out, h);
}

// The buffers a forward resumed after `group`'s capture reads besides h: the group's input.
bool resume_points(const ModelSpec&, int group, std::vector<int>* live) {
  static const int kInput[] = {kA, kCtx, kA, kGateOut};
  *live = {kInput[group]};
  return true;
}

void embed(Backend& be, const ModelSpec& d, const EmbeddingWeights& e,
           const std::vector<int32_t>& tokens, int64_t, float* h) {
  for (size_t t = 0; t < tokens.size(); ++t) {
    be.copy(h + static_cast<int64_t>(t) * d.hidden,
            e.table().data() + static_cast<int64_t>(tokens[t]) * d.hidden, d.hidden);
  }
}

void final_norm(Backend& be, const ModelSpec& d, const FinalNormWeights& f, int64_t n,
                const float* h, float* out) {
  be.rms_norm(n, d.hidden, h, f.norm[0].data(), d.norm_eps, out);
}

}  // namespace

const FamilyForward& llama_forward() {
  static const FamilyForward kForward{workspace, block, resume_points, embed, final_norm};
  return kForward;
}

}  // namespace gptqd
