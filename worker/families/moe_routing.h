// Top-k routing of a mixture of experts, as transformers' routers compute it (MixtralTopKRouter,
// Qwen2MoeTopKRouter, Qwen3MoeTopKRouter): p = softmax(logits) in fp32; the k largest p of each
// token (ties: the lower expert first); with `renormalize` each token's k weights divided by
// their sum. Host arithmetic on the router logits (tokens x experts floats: small beside the
// activations), so the CPU and CUDA backends route alike.
#pragma once

#include <cstdint>
#include <vector>

namespace gptqd {

// The tokens routed to one expert, ascending, with their routing weights.
struct ExpertRoute {
  std::vector<int64_t> tokens;
  std::vector<float> weights;
};

// logits [tokens, experts] row-major. Returns one ExpertRoute per expert. Needs 1 <= k <=
// experts.
std::vector<ExpertRoute> route_top_k(const std::vector<float>& logits, int64_t tokens,
                                     int64_t experts, int64_t k, bool renormalize);

// softmax of one row of n logits in fp32 (max subtracted first), into p.
void softmax_row(const float* logits, int64_t n, float* p);

}  // namespace gptqd
