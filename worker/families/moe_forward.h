// The mixture-of-experts forward (Mixtral, Qwen2-MoE, Qwen3-MoE; io/model/families/moe.cpp
// declares them): the Llama attention, then
//   a = rmsnorm(h);  route = top_k(softmax(a G^T))          G: the router [experts, hidden], fp32
//   h += sum over a token's experts e of w_e * down_e(silu(gate_e(a)) * up_e(a))
//        (+ sigmoid(a g^T) * shared(a) with Qwen2-MoE's shared expert)
// Routing on the host (worker/families/moe_routing.h); the routed rows gathered per expert and
// each expert's output added back, weighted, row by row (Backend::copy and a rank-1 gemm: no
// backend op of its own, so the CUDA backend runs it unchanged, one small call per routed row).
//
// Capture (worker/block_forward.h): the attention's inputs 0 and 1 as in the Llama family; then
// group 2 captures every expert's gate/up input (the rows routed to it, `samples` = their count:
// an expert's Hessian is normalised by its tokens) and the shared expert's (all tokens, samples =
// sequences); group 3 every expert's down input (its intermediate activations) and the shared
// expert's. An expert that no token of the micro-batch reaches is not called. With
// BlockWorkspace::capture_all_experts every expert's inputs are captured over all tokens instead
// (samples = tokens), the output still the routed mix.
#pragma once

#include <functional>
#include <vector>

#include "worker/block_forward.h"
#include "worker/families/moe_routing.h"

namespace gptqd {

// What the forward computes, rule by rule. The defaults are transformers'; the tests break one
// rule at a time (mutation controls) and show that the fixtures notice.
struct MoeRules {
  std::function<std::vector<ExpertRoute>(const std::vector<float>& logits, int64_t tokens,
                                         int64_t experts, int64_t k, bool renormalize)>
      route = route_top_k;
  bool shared_expert_gate = true;  // false: the shared expert's output added unscaled
};

void moe_block(Backend& be, const ModelSpec& d, const BlockWeights& w, int64_t batch, int64_t seq,
               float* h, BlockWorkspace& ws, const LinearCapture& capture, int stop_after,
               const MoeRules& rules, int start_after = -1);

}  // namespace gptqd
