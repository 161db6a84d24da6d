// The DeepSeek-V3 / Kimi-K2 block (worker/families/deepseek_forward.h): MLA attention, then
//   a = rmsnorm(h);  routes = DeepSeek's router on a G^T (fp32, worker/families/deepseek_routing.h)
//   h += sum over a token's experts e of w_e * down_e(silu(gate_e(a)) * up_e(a)) + shared(a)
// as transformers 5.25's DeepseekV3MoE (the routed sum first, index_add_ order, then the shared
// experts' output added, then the residual). A dense block (first_k_dense_replace,
// ModelSpec::dense_mlp) has DeepseekV3MLP instead: h += down(silu(gate(a)) * up(a)). The routed
// experts are worker/families/moe_experts.h's, shared with the other mixtures.
#include <algorithm>

#include "base/check.h"
#include "worker/families/deepseek_forward.h"
#include "worker/families/deepseek_routing.h"
#include "worker/families/family_forward.h"
#include "worker/families/moe_experts.h"

namespace gptqd {
namespace {

// Block norms (io/model/families/deepseek.cpp): input, post-attention, (q_a), kv_a, the router and
// its correction bias.
constexpr int kPostNorm = 1;
int router_norm(const ModelSpec& d) { return d.config.mla.q_lora_rank > 0 ? 4 : 3; }

std::vector<int64_t> workspace(const ModelSpec& d) {
  const MlaConfig& m = d.config.mla;
  const int64_t heads = d.n_head, dw = mla_attention_width(d);
  const int64_t f = d.dense_mlp ? d.ffn : std::max(d.config.moe_ffn, d.config.shared_ffn);
  std::vector<int64_t> w(kDsBufs);
  w[kDsA] = d.hidden;
  w[kDsQA] = std::max<int64_t>(m.q_lora_rank, 1);
  w[kDsKvA] = m.kv_lora_rank + m.qk_rope_head_dim;
  w[kDsKvLat] = m.kv_lora_rank;
  w[kDsKPe] = m.qk_rope_head_dim;
  w[kDsKvB] = heads * (m.qk_nope_head_dim + m.v_head_dim);
  w[kDsQp] = w[kDsKp] = w[kDsVp] = w[kDsCtxP] = heads * dw;
  w[kDsCtx] = heads * m.v_head_dim;
  w[kDsRope] = heads * m.qk_rope_head_dim;
  w[kDsOut] = w[kDsRows] = w[kDsMoe] = d.hidden;
  w[kDsGate] = w[kDsUp] = f;
  w[kDsLogits] = d.config.n_experts + 1;
  w[kDsOne] = 1;
  return w;
}

std::vector<ExpertRoute> route(Backend& be, const ModelSpec& d, const BlockWeights& w,
                               int64_t tokens, const float* a, float* logits,
                               const DeepseekRules& rules) {
  const ModelConfig& c = d.config;
  const int64_t hd = d.hidden, experts = c.n_experts;
  // The router in fp32 whatever the forward's precision: a flipped choice is a different model.
  be.gemm(false, true, tokens, experts, hd, 1.0f, a, hd, w.norms[router_norm(d)].data(), hd, 0.0f,
          logits, experts);
  std::vector<float> host(static_cast<size_t>(tokens * experts)), bias(experts);
  be.to_host(host.data(), logits, tokens * experts);
  be.to_host(bias.data(), w.norms[router_norm(d) + 1].data(), experts);
  DeepseekRouting r;
  r.experts = experts;
  r.k = c.experts_per_tok;
  r.n_group = c.mla.n_group;
  r.topk_group = c.mla.topk_group;
  r.norm_topk_prob = c.norm_topk_prob;
  r.routed_scaling_factor = static_cast<float>(c.mla.routed_scaling_factor);
  r.use_correction_bias = rules.use_correction_bias;
  r.group_limited = rules.group_limited;
  return route_deepseek(host, bias, tokens, r);
}

// A dense block's MLP (first_k_dense_replace), as DeepseekV3MLP: h += down(silu(gate(a)) * up(a)),
// a = rmsnorm(h). Its linears follow the attention's: gate, up (one input), down.
void dense_mlp(Backend& be, const ModelSpec& d, const BlockWeights& w, int64_t batch, int64_t seq,
               float* h, BlockWorkspace& ws, const LinearCapture& capture, int stop_after,
               int start_after) {
  const int64_t tokens = batch * seq, hd = d.hidden;
  const int first = d.config.mla.q_lora_rank > 0 ? 5 : 4;
  float* a = ws.bufs[kDsA].data();
  float* gate = ws.bufs[kDsGate].data();
  float* up = ws.bufs[kDsUp].data();
  if (start_after < 3) {
    be.rms_norm(tokens, hd, h, w.norms[kPostNorm].data(), d.norm_eps, a);
    if (capture) capture(d.linears[first].input, a, tokens, batch);
    if (stop_after == 3) return;
  }
  if (start_after < 4) {
    linear_forward(be, w.linears[first], tokens, a, gate);
    linear_forward(be, w.linears[first + 1], tokens, a, up);
    be.silu_mul(tokens * d.ffn, gate, up);
    if (capture) capture(d.linears[first + 2].input, gate, tokens, batch);
    if (stop_after == 4) return;
  }
  float* out = ws.bufs[kDsOut].data();
  linear_forward(be, w.linears[first + 2], tokens, gate, out);
  be.add(tokens * hd, out, h);
}

}  // namespace

void deepseek_block(Backend& be, const ModelSpec& d, const BlockWeights& w, int64_t batch,
                    int64_t seq, float* h, BlockWorkspace& ws, const LinearCapture& capture,
                    int stop_after, const DeepseekRules& rules, int start_after) {
  GPTQD_CHECK(d.dense_mlp || start_after < 4,
              "DeepSeek-V3 cannot resume after its down projections");
  if (mla_attention(be, d, w, batch, seq, h, ws, capture, stop_after, start_after, rules)) return;
  if (d.dense_mlp) {
    dense_mlp(be, d, w, batch, seq, h, ws, capture, stop_after, start_after);
    return;
  }
  const ModelConfig& c = d.config;
  const int64_t tokens = batch * seq, hd = d.hidden, experts = c.n_experts;
  const ExpertLinears L{c.mla.q_lora_rank > 0 ? 5 : 4, experts, c.shared_ffn > 0};
  auto buf = [&](DeepseekBuf b) { return ws.bufs[b].data(); };
  float* a = buf(kDsA);
  float* rows = buf(kDsRows);
  float* gate = buf(kDsGate);
  float* up = buf(kDsUp);
  float* out = buf(kDsOut);
  float* moe = buf(kDsMoe);
  float* one = buf(kDsOne);

  // Resumed after the experts' input was captured (start_after 3), a is kept and the routing,
  // cheap, is computed again from it.
  if (start_after < 3) be.rms_norm(tokens, hd, h, w.norms[kPostNorm].data(), d.norm_eps, a);
  const std::vector<ExpertRoute> routes = route(be, d, w, tokens, a, buf(kDsLogits), rules);
  if (!routed_experts(be, d, w, L, routes, batch, seq, {a, rows, gate, up, out, moe, one}, ws,
                      capture, 3, stop_after, start_after))
    return;
  if (L.shared) {
    linear_forward(be, w.linears[L.shared_gate()], tokens, a, gate);
    linear_forward(be, w.linears[L.shared_up()], tokens, a, up);
    be.silu_mul(tokens * c.shared_ffn, gate, up);
    if (capture) capture(d.linears[L.shared_down()].input, gate, tokens, batch);
    if (stop_after == 4) return;
    linear_forward(be, w.linears[L.shared_down()], tokens, gate, out);
    be.add(tokens * hd, out, moe);
  }
  if (stop_after == 4) return;
  be.add(tokens * hd, moe, h);
}

namespace {

void block(Backend& be, const ModelSpec& d, const BlockWeights& w, int64_t batch, int64_t seq,
           float* h, BlockWorkspace& ws, const LinearCapture& capture, int stop_after,
           int start_after) {
  deepseek_block(be, d, w, batch, seq, h, ws, capture, stop_after, DeepseekRules{}, start_after);
}

// The buffers a forward resumed after `group`'s capture reads besides h: the normed input; q_b's
// input (or, with q_proj, the normed input), kv_b's latent and k_rope; the heads' output; the
// MoE's normed input (the routing is computed again from it). Not after the down projections:
// their inputs are every expert's own rows (a dense block's: its down input).
// tests/unit/test_deepseek_sequential.cpp checks each.
bool resume_points(const ModelSpec& d, int group, std::vector<int>* live) {
  switch (group) {
    case 0:
      *live = {kDsA};
      return true;
    case 1:
      *live = {d.config.mla.q_lora_rank > 0 ? kDsQA : kDsA, kDsKvLat, kDsKPe};
      return true;
    case 2:
      *live = {kDsCtx};
      return true;
    case 3:
      *live = {kDsA};
      return true;
    case 4:  // a dense block's down input is every token's: resumable
      *live = {kDsGate};
      return d.dense_mlp;
    default:
      return false;
  }
}

}  // namespace

const FamilyForward& deepseek_forward() {
  // The embedding and final norm are the Llama family's.
  static const FamilyForward kForward{workspace, block, resume_points, llama_forward().embed,
                                      llama_forward().final_norm};
  return kForward;
}

}  // namespace gptqd
