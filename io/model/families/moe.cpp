// The mixtures of experts built on Llama attention (DESIGN.md §5c): Mixtral, Qwen2-MoE
// (Qwen1.5-MoE, Qwen2-57B-A14B) and Qwen3-MoE. The attention half of a block is the Llama
// family's (Qwen3-MoE with per-head q/k RMSNorm); the MLP half is a router (a [E, hidden] matrix
// kept in full precision, declared with the norms), E SiLU-gated experts of which each token
// takes the top k, and for Qwen2-MoE a shared expert that every token takes, scaled by
// sigmoid(shared_expert_gate). Key names and defaults as in transformers' configuration_{mixtral,
// qwen2_moe,qwen3_moe}.py (4.57 and 5.25); tensor names as the released checkpoints store them
// (one tensor per expert and projection, which transformers 5.x fuses on load).
//
// True-sequential groups: [q, k, v] -> [o] -> [every expert's gate and up, the shared expert's
// gate and up] -> [every expert's down, the shared expert's down]. Within a group each expert is
// its own Hessian input (LinearSpec::input): its tokens are those routed to it. Qwen2/3-MoE's
// dense blocks (mlp_only_layers, decoder_sparse_step) are a second block kind (ModelSpec::block)
// whose MLP is the Llama family's gate/up/down of width intermediate_size, computed by the Llama
// forward.
#include <algorithm>
#include <vector>

#include "base/check.h"
#include "io/model/config_json.h"
#include "io/model/families/family_decl.h"
#include "io/model/families/llama_config.h"
#include "io/model/json_strict.h"

namespace gptqd {
namespace {

using nlohmann::json;

// Blocks whose MLP is dense (transformers: layer i is sparse iff i is not in mlp_only_layers and
// (i + 1) % decoder_sparse_step == 0): a Qwen2MoeMLP / Qwen3MoeMLP of width intermediate_size.
std::vector<bool> dense_blocks(const json& j, int64_t n_layer, const std::string& src) {
  const int64_t step = config_optional_int(j, "decoder_sparse_step", 1, src);
  GPTQD_INPUT_CHECK(step >= 1, "{}: decoder_sparse_step is {}, expected >= 1", src, step);
  std::vector<int64_t> only;
  if (const auto it = j.find("mlp_only_layers"); it != j.end() && !it->is_null()) {
    GPTQD_INPUT_CHECK(it->is_array(), "{}: mlp_only_layers is {}, expected a list of layers", src,
                      json_type_name(*it));
    for (const json& v : *it) {
      GPTQD_INPUT_CHECK(v.is_number_integer(), "{}: mlp_only_layers holds {}, expected integers",
                        src, quote_name(v.dump(), 40));
      only.push_back(v.get<int64_t>());
    }
  }
  std::vector<bool> dense(static_cast<size_t>(n_layer), false);
  bool any = false;
  for (int64_t i = 0; i < n_layer; ++i) {
    const bool listed = std::find(only.begin(), only.end(), i) != only.end();
    dense[static_cast<size_t>(i)] = listed || (i + 1) % step != 0;
    any = any || dense[static_cast<size_t>(i)];
  }
  if (!any) dense.clear();
  return dense;
}

ModelConfig parse(const json& j, const std::string& type, const std::string& src) {
  ModelConfig c;
  parse_decoder_shape(j, src, 0, &c);
  if (type == "mixtral") {
    c.n_experts = config_positive(j, {"num_local_experts"}, src);
    c.moe_ffn = c.ffn;
    c.norm_topk_prob = true;  // MixtralTopKRouter always renormalises
    // Every layer slides when sliding_window is set (null in the released Mixtral files).
    c.sliding_window = config_optional_int(j, "sliding_window", 0, src);
  } else {
    // Qwen3-MoE: transformers 5.x writes num_local_experts (its attribute_map), 4.x num_experts.
    c.n_experts = config_positive(j, {"num_experts", "num_local_experts"}, src);
    c.moe_ffn = config_positive(j, {"moe_intermediate_size"}, src);
    c.norm_topk_prob = config_bool(j, "norm_topk_prob", false, src);
    c.sliding_window = qwen_sliding_window(j, c.n_layer, src);
    c.dense_mlp_blocks = dense_blocks(j, c.n_layer, src);
  }
  if (type == "qwen2_moe") {
    c.shared_ffn = config_positive(j, {"shared_expert_intermediate_size"}, src);
    c.qkv_bias = config_bool(j, "qkv_bias", true, src);  // 4.x: always; 5.x: this key
  } else if (type == "qwen3_moe") {
    c.qkv_bias = config_bool(j, "attention_bias", false, src);
    c.o_bias = c.qkv_bias;
    c.qk_norm = true;
  }
  c.experts_per_tok = config_positive(j, {"num_experts_per_tok"}, src);
  GPTQD_INPUT_CHECK(c.experts_per_tok <= c.n_experts,
                    "{}: num_experts_per_tok {} is larger than the {} experts ({})", src,
                    c.experts_per_tok, c.n_experts,
                    type == "mixtral" ? "num_local_experts" : "num_experts");
  parse_decoder_tail(j, src, &c);
  return c;
}

void describe(ModelSpec& s) {
  const ModelConfig& c = s.config;
  const int64_t h = s.hidden;
  const bool mixtral = c.model_type == "mixtral";
  const std::string mlp = mixtral ? "block_sparse_moe." : "mlp.";
  const std::string gate = mixtral ? "w1" : "gate_proj", up = mixtral ? "w3" : "up_proj",
                    down = mixtral ? "w2" : "down_proj";
  describe_decoder(s);
  if (s.dense_mlp) {  // Qwen2MoeMLP / Qwen3MoeMLP(intermediate_size): the Llama MLP, no biases
    s.linears.push_back({"mlp.gate_proj", s.ffn, h, false, 2});
    s.linears.push_back({"mlp.up_proj", s.ffn, h, false, 2});
    s.linears.push_back({"mlp.down_proj", h, s.ffn, false, 3});
    return;
  }
  // The router and the shared expert's gate stay in full precision: tensors of the block, not
  // linears GPTQ quantizes.
  s.block_norms.push_back({mlp + "gate.weight", {c.n_experts, h}});
  if (c.shared_ffn > 0) s.block_norms.push_back({"mlp.shared_expert_gate.weight", {1, h}});
  int input = 2;
  for (int64_t e = 0; e < c.n_experts; ++e, ++input) {
    const std::string ex = mlp + "experts." + std::to_string(e) + ".";
    const int ei = static_cast<int>(e);
    s.linears.push_back({ex + gate, c.moe_ffn, h, false, 2, input, ei});
    s.linears.push_back({ex + up, c.moe_ffn, h, false, 2, input, ei});
  }
  if (c.shared_ffn > 0) {
    s.linears.push_back({"mlp.shared_expert.gate_proj", c.shared_ffn, h, false, 2, input});
    s.linears.push_back({"mlp.shared_expert.up_proj", c.shared_ffn, h, false, 2, input});
    ++input;
  }
  for (int64_t e = 0; e < c.n_experts; ++e, ++input) {
    const std::string ex = mlp + "experts." + std::to_string(e) + ".";
    s.linears.push_back({ex + down, h, c.moe_ffn, false, 3, input, static_cast<int>(e)});
  }
  if (c.shared_ffn > 0) {
    s.linears.push_back({"mlp.shared_expert.down_proj", h, c.shared_ffn, false, 3, input});
  }
}

// Keys every MoE family reads (beside its own).
std::vector<std::string> common_reads(std::vector<std::string> own) {
  std::vector<std::string> r = {"num_hidden_layers",
                                "hidden_size",
                                "num_attention_heads",
                                "vocab_size",
                                "intermediate_size",
                                "num_key_value_heads",
                                "head_dim",
                                "rms_norm_eps",
                                "rope_theta",
                                "rope_scaling",
                                "rope_parameters",
                                "max_position_embeddings",
                                "tie_word_embeddings",
                                "sliding_window",
                                "hidden_act",
                                "num_experts_per_tok",
                                "bos_token_id",
                                "eos_token_id",
                                "pad_token_id",
                                "torch_dtype",
                                "dtype"};
  r.insert(r.end(), own.begin(), own.end());
  return r;
}

// Training only: the load-balancing loss and whether the forward returns router logits.
const std::vector<std::string> kRouterTrainingKeys = {"router_aux_loss_coef",
                                                      "output_router_logits"};

std::vector<std::string> with_training(std::vector<std::string> own) {
  own.insert(own.end(), kRouterTrainingKeys.begin(), kRouterTrainingKeys.end());
  return own;
}

}  // namespace

const FamilyDecl& mixtral_family() {
  // router_jitter_noise multiplies the input by noise only in training mode.
  static const FamilyDecl kDecl{Family::kMoe,
                                {"mixtral"},
                                parse,
                                describe,
                                common_reads({"num_local_experts"}),
                                with_training({"router_jitter_noise"})};
  return kDecl;
}

const FamilyDecl& qwen2_moe_family() {
  static const FamilyDecl kDecl{
      Family::kMoe,
      {"qwen2_moe"},
      parse,
      describe,
      common_reads({"num_experts", "moe_intermediate_size", "shared_expert_intermediate_size",
                    "norm_topk_prob", "decoder_sparse_step", "mlp_only_layers", "qkv_bias",
                    "use_sliding_window", "max_window_layers", "layer_types"}),
      with_training({})};
  return kDecl;
}

const FamilyDecl& qwen3_moe_family() {
  static const FamilyDecl kDecl{
      Family::kMoe,
      {"qwen3_moe"},
      parse,
      describe,
      common_reads({"num_experts", "num_local_experts", "moe_intermediate_size", "norm_topk_prob",
                    "decoder_sparse_step", "mlp_only_layers", "attention_bias",
                    "use_sliding_window", "max_window_layers", "layer_types"}),
      with_training({})};
  return kDecl;
}

}  // namespace gptqd
