#include <algorithm>
#include <cmath>

#include "base/check.h"
#include "worker/families/family_forward.h"
#include "worker/families/llama_attention.h"
#include "worker/families/moe_experts.h"
#include "worker/families/moe_forward.h"

namespace gptqd {
namespace {

// Block norms after the attention's (io/model/families/moe.cpp): the post-attention norm is 1;
// the router follows input, post and (qk_norm) q/k norms; the shared expert's gate follows it.
constexpr int kPostNorm = 1;
int router_norm(const ModelSpec& d) { return d.config.qk_norm ? 4 : 2; }

// BlockWorkspace buffers: the Llama attention's six, then the MoE's.
enum Buf { kA, kQOut, kKOut, kVOut, kCtx, kOut, kGateOut, kUpOut, kRows, kMoe, kLogits, kOne };

int64_t mlp_width(const ModelSpec& d) { return std::max(d.config.moe_ffn, d.config.shared_ffn); }

std::vector<int64_t> workspace(const ModelSpec& d) {
  const int64_t q = d.n_head * d.head_dim, kv = d.n_kv_head * d.head_dim, f = mlp_width(d);
  return {d.hidden, q, kv, kv, q, d.hidden, f, f, d.hidden, d.hidden, d.config.n_experts + 1, 1};
}

}  // namespace

void moe_block(Backend& be, const ModelSpec& d, const BlockWeights& w, int64_t batch, int64_t seq,
               float* h, BlockWorkspace& ws, const LinearCapture& capture, int stop_after,
               const MoeRules& rules, int start_after) {
  GPTQD_CHECK(start_after < 3, "a mixture of experts cannot resume after its down projections");
  if (llama_attention(be, d, w, batch, seq, h, ws, capture, stop_after, start_after)) return;
  const ModelConfig& c = d.config;
  const int64_t tokens = batch * seq, hd = d.hidden, experts = c.n_experts;
  const ExpertLinears L{4, experts, c.shared_ffn > 0};
  float* a = ws.bufs[kA].data();
  float* rows = ws.bufs[kRows].data();
  float* gate = ws.bufs[kGateOut].data();
  float* up = ws.bufs[kUpOut].data();
  float* out = ws.bufs[kOut].data();
  float* moe = ws.bufs[kMoe].data();
  float* logits = ws.bufs[kLogits].data();
  float* one = ws.bufs[kOne].data();

  // Resumed after the experts' input was captured (start_after 2), a is kept and the routing,
  // cheap, is computed again from it.
  if (start_after < 2) be.rms_norm(tokens, hd, h, w.norms[kPostNorm].data(), d.norm_eps, a);
  // The router in fp32 whatever the forward's precision: a flipped choice is a different model.
  be.gemm(false, true, tokens, experts, hd, 1.0f, a, hd, w.norms[router_norm(d)].data(), hd, 0.0f,
          logits, experts);
  std::vector<float> host_logits(static_cast<size_t>(tokens * experts));
  be.to_host(host_logits.data(), logits, tokens * experts);
  const std::vector<ExpertRoute> routes =
      rules.route(host_logits, tokens, experts, c.experts_per_tok, c.norm_topk_prob);
  GPTQD_CHECK(static_cast<int64_t>(routes.size()) == experts, "{} routes for {} experts",
              routes.size(), experts);
  if (!routed_experts(be, d, w, L, routes, batch, seq, {a, rows, gate, up, out, moe, one}, ws,
                      capture, 2, stop_after, start_after))
    return;
  if (L.shared) {
    linear_forward(be, w.linears[L.shared_gate()], tokens, a, gate);
    linear_forward(be, w.linears[L.shared_up()], tokens, a, up);
    be.silu_mul(tokens * c.shared_ffn, gate, up);
    if (capture) capture(d.linears[L.shared_down()].input, gate, tokens, batch);
    if (stop_after == 3) return;
    linear_forward(be, w.linears[L.shared_down()], tokens, gate, out);
    // sigmoid(a g^T) per token, on the host with the routing.
    be.gemm(false, true, tokens, 1, hd, 1.0f, a, hd, w.norms[router_norm(d) + 1].data(), hd, 0.0f,
            logits, 1);
    std::vector<float> g(static_cast<size_t>(tokens));
    be.to_host(g.data(), logits, tokens);
    for (int64_t t = 0; t < tokens; ++t) {
      const float s = rules.shared_expert_gate ? 1.0f / (1.0f + std::exp(-g[t])) : 1.0f;
      add_scaled_row(be, hd, s, one, out + t * hd, moe + t * hd);
    }
  }
  if (stop_after == 3) return;
  be.add(tokens * hd, moe, h);
}

namespace {

void block(Backend& be, const ModelSpec& d, const BlockWeights& w, int64_t batch, int64_t seq,
           float* h, BlockWorkspace& ws, const LinearCapture& capture, int stop_after,
           int start_after) {
  moe_block(be, d, w, batch, seq, h, ws, capture, stop_after, MoeRules{}, start_after);
}

// The buffers a forward resumed after `group`'s capture reads besides h: the attention's inputs,
// then the experts' (the routing is computed again from it). Not after the down projections:
// their inputs are every expert's own rows.
bool resume_points(const ModelSpec&, int group, std::vector<int>* live) {
  static const int kInput[] = {kA, kCtx, kA};
  if (group > 2) return false;
  *live = {kInput[group]};
  return true;
}

}  // namespace

const FamilyForward& moe_forward() {
  // The embedding and final norm are the Llama family's.
  static const FamilyForward kForward{workspace, block, resume_points, llama_forward().embed,
                                      llama_forward().final_norm};
  return kForward;
}

}  // namespace gptqd
