// DeepSeek-V3's router (transformers 5.25 DeepseekV3TopkRouter, the noaux_tc method): per token,
//   s = sigmoid(logits)                                  fp32; the weights come from s
//   c = s + e_score_correction_bias                      the choice comes from c
//   group score = sum of the two largest c of the group; the topk_group best groups kept
//   the k largest c among the kept groups' experts (ties: the lower expert first)
//   w = s of the chosen; / (sum + 1e-20) when norm_topk_prob; * routed_scaling_factor
// Host arithmetic on the router logits, as worker/families/moe_routing.h.
#pragma once

#include <cstdint>
#include <vector>

#include "worker/families/moe_routing.h"

namespace gptqd {

struct DeepseekRouting {
  int64_t experts = 0, k = 0, n_group = 1, topk_group = 1;
  bool norm_topk_prob = true;
  float routed_scaling_factor = 1;
  // Mutation controls of the tests (the defaults are transformers'): false drops the correction
  // bias from the choice, or the group limit (every group kept).
  bool use_correction_bias = true;
  bool group_limited = true;
};

// logits [tokens, experts] row-major, bias [experts]. One ExpertRoute per expert.
std::vector<ExpertRoute> route_deepseek(const std::vector<float>& logits,
                                        const std::vector<float>& bias, int64_t tokens,
                                        const DeepseekRouting& r);

}  // namespace gptqd
