// The rotary embedding of DeepSeek-V3 / Kimi-K2's MLA attention, as transformers 5.25 computes
// it (modeling_rope_utils.py: the default rule or _compute_yarn_parameters, yarn_apply_mscale):
// frequencies over the qk_rope_head_dim rotated dims only, YaRN's blend of interpolated and
// extrapolated frequencies, its attention factor on cos/sin, and the softmax scale with
// mscale_all_dim folded in.
#pragma once

#include <cstdint>
#include <vector>

#include "io/model/model_config.h"

namespace gptqd {

// inv_freq[i], i < qk_rope_head_dim / 2, in fp32 as torch computes it: theta^(-2i/dim), or with
// YaRN inv_interp * (1 - e) + inv_extrap * e, e = 1 - ramp(i) over the correction range of
// beta_fast / beta_slow rotations at original_max_position_embeddings (floor/ceil with truncate).
std::vector<float> mla_inv_freq(const ModelConfig& c);

// The factor cos and sin are multiplied by: 1 without YaRN; attention_factor when given; else
// mscale(factor, mscale) / mscale(factor, mscale_all_dim) when both are set, else
// mscale(factor, 1); mscale(s, m) = 0.1 m ln(s) + 1 for s > 1, else 1.
double mla_attention_factor(const ModelConfig& c);

// The softmax scale: qk_head_dim^-0.5, times mscale(factor, mscale_all_dim)^2 with YaRN and a
// non-zero mscale_all_dim.
double mla_softmax_scale(const ModelConfig& c);

}  // namespace gptqd
