// The Llama family (DESIGN.md §5b): Llama 2 and 3.x, Mistral, Qwen2/2.5, Qwen3 dense and SmolLM2
// share one block (RMSNorm, RoPE, grouped-query attention, SiLU-gated MLP); their configs differ
// in which biases exist, whether q/k get a per-head RMSNorm, and the RoPE frequency rule.
// Key names and defaults as in transformers' configuration_{llama,mistral,qwen2,qwen3}.py.
#include "io/model/config_json.h"
#include "io/model/families/family_decl.h"
#include "io/model/json_strict.h"
#include "base/check.h"

namespace gptqd {
namespace {

using nlohmann::json;

RopeScaling parse_rope_scaling(const json& j, const std::string& src) {
  RopeScaling r;
  const auto it = j.find("rope_scaling");
  if (it == j.end() || it->is_null()) return r;
  GPTQD_INPUT_CHECK(it->is_object(), "{}: key 'rope_scaling' is {}, expected an object or null",
                    src, json_type_name(*it));
  const json& rs = *it;
  // transformers reads "rope_type", or the legacy "type".
  std::string type = config_string(rs, "type", "default", src);
  type = config_string(rs, "rope_type", type, src);
  const std::string where = src + " rope_scaling";
  if (type == "default") return r;
  if (type == "linear") {
    r.type = RopeType::kLinear;
    r.factor = config_positive_number(rs, "factor", 0, where);
    GPTQD_INPUT_CHECK(r.factor > 0, "{}: linear scaling needs 'factor'", where);
    return r;
  }
  if (type == "llama3") {
    r.type = RopeType::kLlama3;
    r.factor = config_positive_number(rs, "factor", 0, where);
    r.low_freq_factor = config_positive_number(rs, "low_freq_factor", 0, where);
    r.high_freq_factor = config_positive_number(rs, "high_freq_factor", 0, where);
    r.original_max_position_embeddings =
        config_optional_int(rs, "original_max_position_embeddings", 0, where);
    GPTQD_INPUT_CHECK(r.factor > 0 && r.low_freq_factor > 0 && r.high_freq_factor > 0 &&
                          r.original_max_position_embeddings > 0,
                      "{}: llama3 scaling needs factor, low_freq_factor, high_freq_factor and "
                      "original_max_position_embeddings",
                      where);
    GPTQD_INPUT_CHECK(r.high_freq_factor != r.low_freq_factor,
                      "{}: llama3 scaling needs high_freq_factor != low_freq_factor", where);
    return r;
  }
  throw InputError(fmt::format("{}: rope_scaling type {} is not supported (supported: default, "
                               "linear, llama3)",
                               src, quote_name(type, 40)));
}

ModelConfig parse(const json& j, const std::string& type, const std::string& src) {
  ModelConfig c;
  c.n_layer = config_positive(j, {"num_hidden_layers"}, src);
  c.hidden = config_positive(j, {"hidden_size"}, src);
  c.n_head = config_positive(j, {"num_attention_heads"}, src);
  c.vocab = config_positive(j, {"vocab_size"}, src);
  c.ffn = config_positive(j, {"intermediate_size"}, src);
  c.n_kv_head = config_optional_int(j, "num_key_value_heads", c.n_head, src);
  GPTQD_INPUT_CHECK(c.n_kv_head > 0 && c.n_head % c.n_kv_head == 0,
                    "{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", src,
                    c.n_head, c.n_kv_head);
  c.head_dim = config_optional_int(j, "head_dim", 0, src);
  if (c.head_dim == 0) {
    GPTQD_INPUT_CHECK(c.hidden % c.n_head == 0,
                      "{}: hidden_size {} is not divisible by num_attention_heads {} (and no "
                      "head_dim is given)",
                      src, c.hidden, c.n_head);
    c.head_dim = c.hidden / c.n_head;
  }
  GPTQD_INPUT_CHECK(c.head_dim > 0 && c.head_dim % 2 == 0,
                    "{}: head_dim {} must be positive and even (rotary embeddings rotate pairs)",
                    src, c.head_dim);
  c.norm_eps = config_positive_number(j, "rms_norm_eps", 1e-6, src);
  c.rope_theta = config_positive_number(j, "rope_theta", 10000, src);
  c.rope_scaling = parse_rope_scaling(j, src);
  c.max_position_embeddings = config_optional_int(j, "max_position_embeddings", 0, src);
  c.tie_word_embeddings = config_bool(j, "tie_word_embeddings", false, src);
  const bool attention_bias = config_bool(j, "attention_bias", false, src);
  if (type == "qwen2") {
    c.qkv_bias = true;  // Qwen2's q/k/v always carry biases, its o_proj never
  } else {
    c.qkv_bias = attention_bias;
    c.o_bias = attention_bias;
  }
  c.mlp_bias = config_bool(j, "mlp_bias", false, src);
  c.qk_norm = type == "qwen3";
  if (type == "mistral") {
    c.sliding_window = config_optional_int(j, "sliding_window", 4096, src);
  } else if (type == "qwen2" || type == "qwen3") {
    if (config_bool(j, "use_sliding_window", false, src)) {
      c.sliding_window = config_optional_int(j, "sliding_window", 0, src);
    }
  }
  GPTQD_INPUT_CHECK(c.sliding_window >= 0, "{}: sliding_window is {}", src, c.sliding_window);
  const std::string act = config_string(j, "hidden_act", "silu", src);
  GPTQD_INPUT_CHECK(act == "silu", "{}: hidden_act {} is not supported (only silu)", src,
                    quote_name(act, 40));
  c.bos_token_id = config_token_id(j, "bos_token_id", -1, src);
  c.eos_token_id = config_token_id(j, "eos_token_id", -1, src);
  c.pad_token_id = config_token_id(j, "pad_token_id", -1, src);
  // transformers >= 4.56 writes "dtype" where older versions wrote "torch_dtype".
  c.torch_dtype = config_string(j, "torch_dtype", config_string(j, "dtype", "", src), src);
  return c;
}

void describe(ModelSpec& s) {
  const ModelConfig& c = s.config;
  const int64_t h = s.hidden, q = s.n_head * s.head_dim, kv = s.n_kv_head * s.head_dim;
  s.strip_prefixes = {"model."};
  s.hf_prefix = "model.";
  s.block_prefix = "layers.";
  s.block_norms = {{"input_layernorm.weight", {h}}, {"post_attention_layernorm.weight", {h}}};
  if (c.qk_norm) {
    s.block_norms.push_back({"self_attn.q_norm.weight", {s.head_dim}});
    s.block_norms.push_back({"self_attn.k_norm.weight", {s.head_dim}});
  }
  s.linears = {{"self_attn.q_proj", q, h, c.qkv_bias, 0},
               {"self_attn.k_proj", kv, h, c.qkv_bias, 0},
               {"self_attn.v_proj", kv, h, c.qkv_bias, 0},
               {"self_attn.o_proj", h, q, c.o_bias, 1},
               {"mlp.gate_proj", s.ffn, h, c.mlp_bias, 2},
               {"mlp.up_proj", s.ffn, h, c.mlp_bias, 2},
               {"mlp.down_proj", h, s.ffn, c.mlp_bias, 3}};
  s.embedding = {{"embed_tokens.weight", {s.vocab, h}}};
  s.final_norm = {{"norm.weight", {h}}};
  if (!c.tie_word_embeddings) s.lm_head = "lm_head.weight";
  if (c.sliding_window > 0) {
    s.max_seqlen = c.sliding_window;
    s.max_seqlen_why = fmt::format(
        "{} attends within a sliding window of {} tokens, which gptqd does not implement",
        c.model_type, c.sliding_window);
  }
}

}  // namespace

const FamilyDecl& llama_family() {
  static const FamilyDecl kDecl{
      Family::kLlama, {"llama", "mistral", "qwen2", "qwen3"}, parse, describe};
  return kDecl;
}

}  // namespace gptqd
