// The DeepSeek-V3 / Kimi-K2 block forward (io/model/families/deepseek.cpp declares the family):
// multi-head latent attention (worker/families/mla_attention.cpp), then the mixture of experts
// with DeepSeek's router (worker/families/deepseek_routing.h) and its shared experts
// (worker/families/deepseek.cpp). Every op is an existing Backend op (copy_2d gathers the rope
// dims and pads the heads to one width for Backend::attention), so the CUDA backend runs it
// unchanged.
//
// Capture (worker/block_forward.h): group 0 the normed input (q_a or q_proj, kv_a); group 1
// q_b's input (q_a_layernorm(q_a(x))) and kv_b's (kv_a_layernorm of the latent); group 2 the
// heads' output (o); group 3 every expert's gate/up input (its routed rows, samples = their
// count) and the shared experts' (all tokens); group 4 the down inputs. capture_all_experts as in
// worker/families/moe_forward.h.
#pragma once

#include "worker/block_forward.h"

namespace gptqd {

// What the forward computes, rule by rule. The defaults are transformers'; the tests break one
// rule at a time (mutation controls) and show that the fixtures notice.
struct DeepseekRules {
  enum class Rope {
    kAsConfigured,   // interleaved pairs or halves as rope_interleave says, on the rope dims
    kFlippedLayout,  // the other layout (interleaved <-> halves)
    kOnNopePart,     // the rotation applied to the first qk_rope_head_dim dims of each head
  };
  Rope rope = Rope::kAsConfigured;
  bool use_correction_bias = true;  // false: the choice from the unbiased sigmoid scores
  bool group_limited = true;        // false: every group kept
};

// BlockWorkspace buffers of the family (widths per token in deepseek.cpp's workspace()).
enum DeepseekBuf {
  kDsA,       // the normed input (attention, then the MoE)          hidden
  kDsQA,      // q_a_layernorm(q_a(x))                              q_lora_rank (1 without)
  kDsKvA,     // kv_a_proj_with_mqa(x)                               kv_lora_rank + rope
  kDsKvLat,   // kv_a_layernorm of its latent part                   kv_lora_rank
  kDsKPe,     // its rope part (k_rope, one head)                    rope
  kDsKvB,     // kv_b(latent): per head [k_nope, v]                  heads * (nope + v)
  kDsQp,      // q per head, padded to the attention width D         heads * D
  kDsKp,      // k per head [k_nope, k_rope], padded                 heads * D
  kDsVp,      // v per head, padded                                  heads * D
  kDsCtxP,    // the attention's output (padded), also q's scratch  heads * D
  kDsCtx,     // the heads' output, o's input                        heads * v
  kDsRope,    // the rope dims gathered for Backend::rope            heads * rope
  kDsOut,     // a linear's output                                   hidden
  kDsGate,    // gate / SiLU product                                 moe width (max shared)
  kDsUp,      // up                                                  moe width (max shared)
  kDsRows,    // an expert's routed rows                             hidden
  kDsMoe,     // the MoE's sum                                       hidden
  kDsLogits,  // router logits                                       experts + 1
  kDsOne,     // the constant 1 of the weighted row adds             1
  kDsBufs
};

// The attention head width Backend::attention runs at: max(qk_nope + qk_rope, v_head_dim).
int64_t mla_attention_width(const ModelSpec& d);

// h += o(MLA(input_layernorm(h))); captures groups 0-2. Returns true when it stopped after one
// (stop_after). Resumed (start_after 0, 1, 2) it reads the buffers deepseek.cpp's resume points
// name.
bool mla_attention(Backend& be, const ModelSpec& d, const BlockWeights& w, int64_t batch,
                   int64_t seq, float* h, BlockWorkspace& ws, const LinearCapture& capture,
                   int stop_after, int start_after, const DeepseekRules& rules);

void deepseek_block(Backend& be, const ModelSpec& d, const BlockWeights& w, int64_t batch,
                    int64_t seq, float* h, BlockWorkspace& ws, const LinearCapture& capture,
                    int stop_after, const DeepseekRules& rules, int start_after = -1);

}  // namespace gptqd
