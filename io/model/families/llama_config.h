// Config readers the Llama family shares with the families built on its attention (the mixtures
// of experts, io/model/families/moe.cpp). Defined in io/model/families/llama.cpp.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "io/model/model_config.h"

namespace gptqd {

// The decoder's shape and norms, read the same way by every family built on Llama's attention:
// num_hidden_layers, hidden_size, num_attention_heads, vocab_size, intermediate_size,
// num_key_value_heads (a divisor of the heads), head_dim (absent or 0: default_head_dim, and
// when that is 0 hidden / heads), rms_norm_eps, the RoPE keys (parse_rope),
// max_position_embeddings and tie_word_embeddings. InputError naming the key on a bad value.
void parse_decoder_shape(const nlohmann::json& j, const std::string& src, int64_t default_head_dim,
                         ModelConfig* c);

// rope_theta, rope_scaling (4.x) or rope_parameters (5.x) into c->rope_theta and
// c->rope_scaling; c->head_dim must be set. InputError naming the key on a bad value.
void parse_rope(const nlohmann::json& j, const std::string& src, ModelConfig* c);

// The sliding window that some layer of a Qwen2/Qwen3-style config attends within (0: none),
// from use_sliding_window, sliding_window, max_window_layers and layer_types.
int64_t qwen_sliding_window(const nlohmann::json& j, int64_t n_layer, const std::string& src);

}  // namespace gptqd
