// Config readers the Llama family shares with the families built on its attention (the mixtures
// of experts, io/model/families/moe.cpp). Defined in io/model/families/llama.cpp.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "io/model/model_config.h"
#include "io/model/model_spec.h"

namespace gptqd {

// The decoder's shape and norms, read the same way by every family built on Llama's attention:
// num_hidden_layers, hidden_size, num_attention_heads, vocab_size, intermediate_size,
// num_key_value_heads (a divisor of the heads), head_dim (absent or 0: default_head_dim, and
// when that is 0 hidden / heads), rms_norm_eps, the RoPE keys (parse_rope),
// max_position_embeddings and tie_word_embeddings. InputError naming the key on a bad value.
void parse_decoder_shape(const nlohmann::json& j, const std::string& src, int64_t default_head_dim,
                         ModelConfig* c);

// What follows the family's own keys in every Llama-style config: sliding_window checked
// non-negative (already read), hidden_act (silu only), the bos/eos/pad token ids and the dtype
// (torch_dtype, or transformers >= 4.56's dtype). InputError naming the key.
void parse_decoder_tail(const nlohmann::json& j, const std::string& src, ModelConfig* c);

// The parts of a Llama-style block every family built on it declares: the "model." prefixes, the
// two RMSNorms (and Qwen3's q/k norms), q/k/v/o as Hessian inputs 0 and 1, the embedding, the
// final norm, an untied head and the sliding-window limit. The family appends its MLP.
void describe_decoder(ModelSpec& s);

// The RoPE settings object: a non-null rope_scaling (4.x) first, else rope_parameters (5.x), with
// its key; nullptr when neither is there. InputError when the one found is not an object.
const nlohmann::json* rope_object(const nlohmann::json& j, const std::string& src,
                                  std::string* key);

// rope_theta, rope_scaling (4.x) or rope_parameters (5.x) into c->rope_theta and
// c->rope_scaling; c->head_dim must be set. InputError naming the key on a bad value.
void parse_rope(const nlohmann::json& j, const std::string& src, ModelConfig* c);

// The sliding window that some layer of a Qwen2/Qwen3-style config attends within (0: none),
// from use_sliding_window, sliding_window, max_window_layers and layer_types.
int64_t qwen_sliding_window(const nlohmann::json& j, int64_t n_layer, const std::string& src);

}  // namespace gptqd
