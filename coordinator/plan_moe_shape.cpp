#include "coordinator/plan_moe_shape.h"

#include <set>

#include "base/check.h"
#include "io/model/config_json.h"
#include "io/model/json_strict.h"

namespace gptqd {
namespace {

using nlohmann::json;

json read_config(const std::string& dir, std::string* src) {
  *src = dir + "/config.json";
  return parse_json_strict(read_small_file(*src), *src);
}

// DeepSeek-V3 / Kimi-K2: MLA (q through a low-rank q_a/q_b pair, or q_proj when q_lora_rank is
// null; k and v through kv_a_proj_with_mqa and kv_b_proj), shared experts, dense first blocks.
void read_deepseek(const json& j, const std::string& src, MoeShape* s) {
  const int64_t h = s->hidden;
  const int64_t heads = config_positive(j, {"num_attention_heads"}, src);
  const int64_t q_lora = config_optional_int(j, "q_lora_rank", 0, src);
  const int64_t kv_lora = config_positive(j, {"kv_lora_rank"}, src);
  const int64_t nope = config_positive(j, {"qk_nope_head_dim"}, src);
  const int64_t rope = config_positive(j, {"qk_rope_head_dim"}, src);
  const int64_t v = config_positive(j, {"v_head_dim"}, src);
  GPTQD_INPUT_CHECK(q_lora >= 0, "{}: q_lora_rank {} is negative", src, q_lora);
  // Inputs: 0 the normed hidden state, 1 q_a's normed output, 2 kv_a's normed latent,
  // 3 the attention's output.
  if (q_lora > 0) {
    s->attention.push_back({"self_attn.q_a_proj", q_lora, h, 0});
    s->attention.push_back({"self_attn.q_b_proj", heads * (nope + rope), q_lora, 1});
  } else {
    s->attention.push_back({"self_attn.q_proj", heads * (nope + rope), h, 0});
  }
  s->attention.push_back({"self_attn.kv_a_proj_with_mqa", kv_lora + rope, h, 0});
  s->attention.push_back({"self_attn.kv_b_proj", heads * (nope + v), kv_lora, 2});
  s->attention.push_back({"self_attn.o_proj", h, heads * v, 3});
  s->heads = heads;
  s->score_width = heads * (nope + rope + v);
  s->dense_ffn = config_positive(j, {"intermediate_size"}, src);
  s->expert_ffn = config_positive(j, {"moe_intermediate_size"}, src);
  s->experts = config_positive(j, {"n_routed_experts"}, src);
  s->top_k = config_positive(j, {"num_experts_per_tok"}, src);
  s->shared_ffn = config_optional_int(j, "n_shared_experts", 0, src) * s->expert_ffn;
  s->dense_blocks = config_optional_int(j, "first_k_dense_replace", 0, src);
  const int64_t freq = config_optional_int(j, "moe_layer_freq", 1, src);
  GPTQD_INPUT_CHECK(freq == 1,
                    "{}: moe_layer_freq {} (an MoE block every {} blocks) is not "
                    "modelled by the plan; DeepSeek-V3 and Kimi-K2 use 1",
                    src, freq, freq);
  s->nextn_layers = config_optional_int(j, "num_nextn_predict_layers", 0, src);
  if (j.contains("quantization_config") && j["quantization_config"].is_object()) {
    const json& q = j["quantization_config"];
    const std::string method = config_string(q, "quant_method", "", src + " quantization_config");
    GPTQD_INPUT_CHECK(method == "fp8",
                      "{}: quantization_config.quant_method '{}': the plan "
                      "reads bf16 or FP8 (block-scaled) weights",
                      src, method);
    int64_t block = 128;
    if (q.contains("weight_block_size") && q["weight_block_size"].is_array() &&
        q["weight_block_size"].size() == 2 && q["weight_block_size"][0].is_number_integer())
      block = q["weight_block_size"][0].get<int64_t>();
    GPTQD_INPUT_CHECK(block > 0, "{}: weight_block_size {} is not positive", src, block);
    s->file_bytes_per_weight = 1.0 + 4.0 / static_cast<double>(block * block);
    s->file_format = fmt::format("FP8 e4m3 in {} x {} scale blocks", block, block);
  }
}

// Grouped-query attention: q, k, v from the normed hidden state, o from the heads' output.
void read_gqa(const json& j, const std::string& src, MoeShape* s) {
  const int64_t h = s->hidden;
  const int64_t heads = config_positive(j, {"num_attention_heads"}, src);
  const int64_t kv = config_optional_int(j, "num_key_value_heads", heads, src);
  const int64_t hd = config_optional_int(j, "head_dim", h / heads, src);
  GPTQD_INPUT_CHECK(kv > 0 && hd > 0,
                    "{}: num_key_value_heads {} and head_dim {} must be "
                    "positive",
                    src, kv, hd);
  s->attention = {{"self_attn.q_proj", heads * hd, h, 0},
                  {"self_attn.k_proj", kv * hd, h, 0},
                  {"self_attn.v_proj", kv * hd, h, 0},
                  {"self_attn.o_proj", h, heads * hd, 1}};
  s->heads = heads;
  s->score_width = 2 * heads * hd;
}

// Qwen2/3-MoE: MoE where (i + 1) % decoder_sparse_step == 0 and i is not in mlp_only_layers.
int64_t qwen_dense_blocks(const json& j, const std::string& src, int64_t blocks) {
  const int64_t step = config_optional_int(j, "decoder_sparse_step", 1, src);
  GPTQD_INPUT_CHECK(step >= 1, "{}: decoder_sparse_step {} must be at least 1", src, step);
  std::set<int64_t> only;
  if (j.contains("mlp_only_layers") && !j["mlp_only_layers"].is_null()) {
    GPTQD_INPUT_CHECK(j["mlp_only_layers"].is_array(), "{}: mlp_only_layers must be a list", src);
    for (const json& v : j["mlp_only_layers"]) {
      GPTQD_INPUT_CHECK(v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() < blocks,
                        "{}: mlp_only_layers holds {}, not a block index below {}", src, v.dump(),
                        blocks);
      only.insert(v.get<int64_t>());
    }
  }
  int64_t dense = 0;
  for (int64_t i = 0; i < blocks; ++i)
    if (only.count(i) || (i + 1) % step != 0) ++dense;
  return dense;
}

}  // namespace

double MoeShape::attention_params() const {
  double p = 0;
  for (const MoeLinear& l : attention) p += static_cast<double>(l.rows) * l.cols;
  return p;
}
double MoeShape::moe_block_params() const {
  const double hd = static_cast<double>(hidden);
  return attention_params() + hd * experts + 3.0 * hd * shared_ffn +
         3.0 * hd * expert_ffn * experts;
}
double MoeShape::dense_block_params() const {
  return attention_params() + 3.0 * hidden * dense_ffn;
}
double MoeShape::total_params() const {
  return moe_block_params() * moe_blocks() + dense_block_params() * dense_blocks +
         2.0 * vocab * hidden;
}
double MoeShape::active_params() const {
  const double routed_inactive = 3.0 * hidden * expert_ffn * (experts - top_k);
  return total_params() - routed_inactive * moe_blocks();
}

bool is_moe_model_type(const std::string& t) {
  return t == "deepseek_v3" || t == "kimi_k2" || t == "mixtral" || t == "qwen2_moe" ||
         t == "qwen3_moe";
}

std::string config_model_type(const std::string& model_dir) {
  std::string src;
  const json j = read_config(model_dir, &src);
  GPTQD_INPUT_CHECK(j.is_object(), "{}: not a JSON object", src);
  return config_string(j, "model_type", "", src);
}

MoeShape moe_shape_of(const std::string& model_dir) {
  std::string src;
  const json j = read_config(model_dir, &src);
  GPTQD_INPUT_CHECK(j.is_object(), "{}: not a JSON object", src);
  MoeShape s;
  s.model_type = config_string(j, "model_type", "", src);
  GPTQD_INPUT_CHECK(is_moe_model_type(s.model_type),
                    "{}: model_type '{}' is not a mixture of "
                    "experts the plan models",
                    src, s.model_type);
  s.blocks = config_positive(j, {"num_hidden_layers"}, src);
  s.hidden = config_positive(j, {"hidden_size"}, src);
  s.vocab = config_positive(j, {"vocab_size"}, src);
  if (s.model_type == "deepseek_v3" || s.model_type == "kimi_k2") {
    read_deepseek(j, src, &s);
  } else {
    read_gqa(j, src, &s);
    s.top_k = config_positive(j, {"num_experts_per_tok"}, src);
    if (s.model_type == "mixtral") {
      s.experts = config_positive(j, {"num_local_experts"}, src);
      s.expert_ffn = config_positive(j, {"intermediate_size"}, src);
    } else {
      s.experts = config_positive(j, {"num_experts"}, src);
      s.expert_ffn = config_positive(j, {"moe_intermediate_size"}, src);
      s.dense_ffn = config_optional_int(j, "intermediate_size", 0, src);
      if (s.model_type == "qwen2_moe")
        s.shared_ffn = config_optional_int(j, "shared_expert_intermediate_size", 0, src);
      s.dense_blocks = qwen_dense_blocks(j, src, s.blocks);
      GPTQD_INPUT_CHECK(s.dense_blocks == 0 || s.dense_ffn > 0,
                        "{}: {} blocks have a dense MLP "
                        "but intermediate_size is missing",
                        src, s.dense_blocks);
    }
  }
  GPTQD_INPUT_CHECK(s.top_k <= s.experts, "{}: num_experts_per_tok {} is more than the {} experts",
                    src, s.top_k, s.experts);
  GPTQD_INPUT_CHECK(s.dense_blocks >= 0 && s.dense_blocks <= s.blocks, "{}: {} dense blocks of {}",
                    src, s.dense_blocks, s.blocks);
  std::set<int> inputs;
  for (const MoeLinear& l : s.attention) inputs.insert(l.input);
  s.attention_inputs = static_cast<int64_t>(inputs.size());
  return s;
}

}  // namespace gptqd
