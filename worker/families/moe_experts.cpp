#include "worker/families/moe_experts.h"

#include "worker/families/family_forward.h"

namespace gptqd {

void add_scaled_row(Backend& be, int64_t n, float alpha, const float* one, const float* x,
                    float* y) {
  be.gemm(false, false, 1, n, 1, alpha, one, 1, x, n, 1.0f, y, n);
}

bool routed_experts(Backend& be, const ModelSpec& d, const BlockWeights& w, const ExpertLinears& L,
                    const std::vector<ExpertRoute>& routes, int64_t batch, int64_t seq,
                    const ExpertBuffers& b, const BlockWorkspace& ws, const LinearCapture& capture,
                    int in_group, int stop_after, int start_after) {
  const int64_t tokens = batch * seq, hd = d.hidden, ffn = d.config.moe_ffn;
  const auto gather = [&](const ExpertRoute& r) {
    for (size_t i = 0; i < r.tokens.size(); ++i) {
      be.copy(b.rows + static_cast<int64_t>(i) * hd, b.a + r.tokens[i] * hd, hd);
    }
  };
  const int first_input = d.linears[L.gate(0)].input;
  // moe.calibration: all (BlockWorkspace::capture_all_experts): every token reaches every
  // expert's Hessian inputs; `samples` = tokens, as for a routed expert.
  const bool all = capture && ws.capture_all_experts;
  if (capture && start_after < in_group) {
    for (int64_t e = 0; e < L.experts; ++e) {
      if (all) {
        capture(first_input + static_cast<int>(e), b.a, tokens, tokens);
        continue;
      }
      const int64_t n = static_cast<int64_t>(routes[e].tokens.size());
      if (n == 0) continue;
      gather(routes[e]);
      capture(first_input + static_cast<int>(e), b.rows, n, n);
    }
    if (L.shared) capture(d.linears[L.shared_gate()].input, b.a, tokens, batch);
  }
  if (stop_after == in_group) return false;

  const int down_group = in_group + 1;
  be.fill(b.one, 1.0f, 1);
  be.fill(b.moe, 0.0f, tokens * hd);
  for (int64_t e = 0; e < L.experts; ++e) {
    const ExpertRoute& r = routes[e];
    const int64_t n = static_cast<int64_t>(r.tokens.size());
    if (all) {  // the down input of every token, for the Hessian only
      linear_forward(be, w.linears[L.gate(e)], tokens, b.a, b.gate);
      linear_forward(be, w.linears[L.up(e)], tokens, b.a, b.up);
      be.silu_mul(tokens * ffn, b.gate, b.up);
      capture(d.linears[L.down(e)].input, b.gate, tokens, tokens);
    }
    if (n == 0 || (all && stop_after == down_group)) continue;
    gather(r);
    linear_forward(be, w.linears[L.gate(e)], n, b.rows, b.gate);
    linear_forward(be, w.linears[L.up(e)], n, b.rows, b.up);
    be.silu_mul(n * ffn, b.gate, b.up);
    if (capture && !all) capture(d.linears[L.down(e)].input, b.gate, n, n);
    if (stop_after == down_group) continue;
    linear_forward(be, w.linears[L.down(e)], n, b.gate, b.out);
    for (int64_t i = 0; i < n; ++i) {
      add_scaled_row(be, hd, r.weights[i], b.one, b.out + i * hd, b.moe + r.tokens[i] * hd);
    }
  }
  return true;
}

}  // namespace gptqd
