// Rotary position embedding tables of the Llama family, as transformers computes them
// (modeling_rope_utils.py): inv_freq from rope_theta and the rope_scaling rule, then
// cos/sin of position * inv_freq in fp32.
#pragma once

#include <cstdint>
#include <vector>

#include "io/model/model_config.h"

namespace gptqd {

// inv_freq[i] for i < head_dim / 2: theta^(-2i / head_dim) (fp32 as torch computes it), then
// rescaled by the rule: linear divides every frequency by factor; llama3 divides the
// low-frequency band (wavelength > original_max / low_freq_factor) by factor, keeps the high
// band (wavelength < original_max / high_freq_factor) and interpolates in between.
std::vector<float> rope_inv_freq(const ModelConfig& c, int64_t head_dim);

// cos and sin [seq, head_dim / 2] of p * inv_freq[i] for positions p < seq.
void rope_tables(const std::vector<float>& inv_freq, int64_t seq, std::vector<float>& cos,
                 std::vector<float>& sin);

}  // namespace gptqd
