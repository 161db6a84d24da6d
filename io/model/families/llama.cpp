// The Llama family (DESIGN.md §5b): Llama 2 and 3.x, Mistral, Qwen2/2.5, Qwen3 dense and SmolLM2
// share one block (RMSNorm, RoPE, grouped-query attention, SiLU-gated MLP); their configs differ
// in which biases exist, whether q/k get a per-head RMSNorm, and the RoPE frequency rule.
// Key names and defaults as in transformers' configuration_{llama,mistral,qwen2,qwen3}.py.
#include <algorithm>
#include <cmath>
#include <vector>

#include "base/check.h"
#include "io/model/config_json.h"
#include "io/model/families/family_decl.h"
#include "io/model/families/llama_config.h"
#include "io/model/json_strict.h"

namespace gptqd {

using nlohmann::json;

namespace {

// The rotary inverse frequencies theta^(-2i / head_dim), i < head_dim / 2, in fp32 as the forward
// computes them (worker/families/rope.cpp, as torch does): each must be finite and positive. A
// theta that fp32 cannot hold or whose powers overflow (1e-300 is 0 in fp32: 1 / 0^e is inf)
// would otherwise make every block's output NaN, refused late as bad calibration inputs.
void check_rope_theta(double theta, int64_t head_dim, const std::string& where) {
  const float base = static_cast<float>(theta);
  for (int64_t i = 0; i < head_dim / 2; ++i) {
    const float e = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    const float inv = 1.0f / std::pow(base, e);
    GPTQD_INPUT_CHECK(std::isfinite(inv) && inv > 0,
                      "{}: key 'rope_theta' is {}: the rotary inverse frequency theta^(-{}/{}) "
                      "is {} in fp32 (head_dim {}); rope_theta must give finite, positive "
                      "frequencies theta^(-2i/head_dim) for every i < head_dim/2",
                      where, theta, 2 * i, head_dim, inv, head_dim);
  }
}

}  // namespace

// The RoPE settings: transformers 4.x writes `rope_theta` and `rope_scaling` (null or an object),
// 5.x one object `rope_parameters` holding rope_type, rope_theta and the scaling factors. Read as
// 5.x reads either file: a non-null legacy rope_scaling first, else rope_parameters; the type from
// rope_type, else the legacy type, else default; theta from the object, else the top-level
// rope_theta, else 10000. Keys of the object that the rule does not use are refused: each could
// change the frequencies (e.g. a partial rotary factor).
void parse_decoder_shape(const json& j, const std::string& src, int64_t default_head_dim,
                         ModelConfig* c) {
  c->n_layer = config_positive(j, {"num_hidden_layers"}, src);
  c->hidden = config_positive(j, {"hidden_size"}, src);
  c->n_head = config_positive(j, {"num_attention_heads"}, src);
  c->vocab = config_positive(j, {"vocab_size"}, src);
  c->ffn = config_positive(j, {"intermediate_size"}, src);
  c->n_kv_head = config_optional_int(j, "num_key_value_heads", c->n_head, src);
  GPTQD_INPUT_CHECK(c->n_kv_head > 0 && c->n_head % c->n_kv_head == 0,
                    "{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", src,
                    c->n_head, c->n_kv_head);
  c->head_dim = config_optional_int(j, "head_dim", default_head_dim, src);
  if (c->head_dim == 0) {
    GPTQD_INPUT_CHECK(c->hidden % c->n_head == 0,
                      "{}: hidden_size {} is not divisible by num_attention_heads {} (and no "
                      "head_dim is given)",
                      src, c->hidden, c->n_head);
    c->head_dim = c->hidden / c->n_head;
  }
  GPTQD_INPUT_CHECK(c->head_dim > 0 && c->head_dim % 2 == 0,
                    "{}: head_dim {} must be positive and even (rotary embeddings rotate pairs)",
                    src, c->head_dim);
  c->norm_eps = config_positive_number(j, "rms_norm_eps", 1e-6, src);
  parse_rope(j, src, c);
  c->max_position_embeddings = config_optional_int(j, "max_position_embeddings", 0, src);
  c->tie_word_embeddings = config_bool(j, "tie_word_embeddings", false, src);
}

void parse_decoder_tail(const json& j, const std::string& src, ModelConfig* c) {
  GPTQD_INPUT_CHECK(c->sliding_window >= 0, "{}: sliding_window is {}", src, c->sliding_window);
  const std::string act = config_string(j, "hidden_act", "silu", src);
  GPTQD_INPUT_CHECK(act == "silu", "{}: hidden_act {} is not supported (only silu)", src,
                    quote_name(act, 40));
  c->bos_token_id = config_token_id(j, "bos_token_id", -1, src);
  c->eos_token_id = config_token_id(j, "eos_token_id", -1, src);
  c->pad_token_id = config_token_id(j, "pad_token_id", -1, src);
  // transformers >= 4.56 writes "dtype" where older versions wrote "torch_dtype".
  c->torch_dtype = config_string(j, "torch_dtype", config_string(j, "dtype", "", src), src);
}

const json* rope_object(const json& j, const std::string& src, std::string* key) {
  for (const char* k : {"rope_scaling", "rope_parameters"}) {
    const auto it = j.find(k);
    if (it == j.end() || it->is_null()) continue;
    GPTQD_INPUT_CHECK(it->is_object(), "{}: key '{}' is {}, expected an object or null", src, k,
                      json_type_name(*it));
    *key = k;
    return &*it;
  }
  return nullptr;
}

void parse_rope(const json& j, const std::string& src, ModelConfig* c) {
  std::string key;
  const json* obj = rope_object(j, src, &key);
  // theta is checked where it was read from (the object's key wins over the top-level one).
  const auto has_theta = [](const json& o) {
    const auto it = o.find("rope_theta");
    return it != o.end() && !it->is_null();
  };
  c->rope_theta = config_positive_number(j, "rope_theta", 10000, src);
  if (obj == nullptr || !has_theta(*obj)) check_rope_theta(c->rope_theta, c->head_dim, src);
  if (obj == nullptr) return;
  const json& rs = *obj;
  const std::string where = src + " " + key;
  c->rope_theta = config_positive_number(rs, "rope_theta", c->rope_theta, where);
  if (has_theta(rs)) check_rope_theta(c->rope_theta, c->head_dim, where);
  std::string type = config_string(rs, "type", "default", where);
  type = config_string(rs, "rope_type", type, where);
  RopeScaling& r = c->rope_scaling;
  std::vector<std::string> uses = {"rope_type", "type", "rope_theta"};
  if (type == "default") {
  } else if (type == "linear") {
    r.type = RopeType::kLinear;
    r.factor = config_positive_number(rs, "factor", 0, where);
    GPTQD_INPUT_CHECK(r.factor > 0, "{}: linear scaling needs 'factor'", where);
    uses.push_back("factor");
  } else if (type == "llama3") {
    r.type = RopeType::kLlama3;
    r.factor = config_positive_number(rs, "factor", 0, where);
    r.low_freq_factor = config_positive_number(rs, "low_freq_factor", 0, where);
    r.high_freq_factor = config_positive_number(rs, "high_freq_factor", 0, where);
    // transformers 5.x falls back to max_position_embeddings (and writes it into the object).
    r.original_max_position_embeddings =
        config_optional_int(rs, "original_max_position_embeddings",
                            config_optional_int(j, "max_position_embeddings", 0, src), where);
    GPTQD_INPUT_CHECK(r.factor > 0 && r.low_freq_factor > 0 && r.high_freq_factor > 0 &&
                          r.original_max_position_embeddings > 0,
                      "{}: llama3 scaling needs factor, low_freq_factor, high_freq_factor and "
                      "original_max_position_embeddings",
                      where);
    GPTQD_INPUT_CHECK(r.high_freq_factor != r.low_freq_factor,
                      "{}: llama3 scaling needs high_freq_factor != low_freq_factor", where);
    uses.insert(uses.end(), {"factor", "low_freq_factor", "high_freq_factor",
                             "original_max_position_embeddings"});
  } else {
    throw InputError(
        fmt::format("{}: {} type {} is not supported (supported: default, linear, llama3)", src,
                    key, quote_name(type, 40)));
  }
  for (const auto& [k, v] : rs.items()) {
    GPTQD_INPUT_CHECK(std::find(uses.begin(), uses.end(), k) != uses.end(),
                      "{}: key {} is not used by rope type {} in gptqd; it may change the "
                      "rotary frequencies, so the model is refused rather than read without it",
                      where, quote_name(k, 60), type);
  }
}

// Which layers attend within a sliding window, as transformers' Qwen2/Qwen3 decide it: none
// unless use_sliding_window (5.x then nulls sliding_window); else `layer_types` when given, or
// layer i >= max_window_layers. gptqd implements full attention only: the window is recorded
// when any layer slides, and jobs whose sequences exceed it are refused (describe()).
int64_t qwen_sliding_window(const json& j, int64_t n_layer, const std::string& src) {
  const bool use = config_bool(j, "use_sliding_window", false, src);
  const int64_t window = config_optional_int(j, "sliding_window", 0, src);
  const int64_t first_sliding = config_optional_int(j, "max_window_layers", n_layer, src);
  bool any = false;
  if (const auto lt = j.find("layer_types"); lt != j.end() && !lt->is_null()) {
    GPTQD_INPUT_CHECK(lt->is_array() && static_cast<int64_t>(lt->size()) == n_layer,
                      "{}: layer_types must be a list of num_hidden_layers = {} entries", src,
                      n_layer);
    for (const json& t : *lt) {
      const std::string v = t.is_string() ? t.get<std::string>() : std::string();
      GPTQD_INPUT_CHECK(v == "full_attention" || v == "sliding_attention",
                        "{}: layer_types holds {}, expected full_attention or sliding_attention",
                        src, quote_name(t.dump(), 60));
      any = any || v == "sliding_attention";
    }
    GPTQD_INPUT_CHECK(!any || (use && window > 0),
                      "{}: layer_types has sliding_attention layers but use_sliding_window is "
                      "false or sliding_window is not set (transformers cannot run this model)",
                      src);
  } else {
    any = use && window > 0 && first_sliding < n_layer;
  }
  return use && any ? window : 0;
}

namespace {

ModelConfig parse(const json& j, const std::string& type, const std::string& src) {
  ModelConfig c;
  // Qwen3's head_dim defaults to 128 (transformers' Qwen3Config), the others derive it.
  parse_decoder_shape(j, src, type == "qwen3" ? 128 : 0, &c);
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
    // Every layer slides when sliding_window is set (null: none).
    c.sliding_window = config_optional_int(j, "sliding_window", 4096, src);
  } else if (type == "qwen2" || type == "qwen3") {
    c.sliding_window = qwen_sliding_window(j, c.n_layer, src);
  }
  if (type != "qwen2" && type != "qwen3") {
    // Llama and Mistral attend as their sliding_window says; a layer_types list (written by
    // some tools) must agree.
    if (const auto lt = j.find("layer_types"); lt != j.end() && !lt->is_null()) {
      GPTQD_INPUT_CHECK(lt->is_array(), "{}: layer_types must be a list", src);
      for (const json& t : *lt) {
        const bool sliding = t == "sliding_attention";
        GPTQD_INPUT_CHECK(t == "full_attention" || (sliding && c.sliding_window > 0),
                          "{}: layer_types holds {}, which {} does not run", src,
                          quote_name(t.dump(), 60), type);
      }
    }
  }
  parse_decoder_tail(j, src, &c);
  return c;
}

void describe(ModelSpec& s) {
  const ModelConfig& c = s.config;
  const int64_t h = s.hidden;
  describe_decoder(s);
  s.linears.push_back({"mlp.gate_proj", s.ffn, h, c.mlp_bias, 2});
  s.linears.push_back({"mlp.up_proj", s.ffn, h, c.mlp_bias, 2});
  s.linears.push_back({"mlp.down_proj", h, s.ffn, c.mlp_bias, 3});
}

}  // namespace

void describe_decoder(ModelSpec& s) {
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
               {"self_attn.o_proj", h, q, c.o_bias, 1}};
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

const FamilyDecl& llama_family() {
  static const FamilyDecl kDecl{
      Family::kLlama,
      {"llama", "mistral", "qwen2", "qwen3"},
      parse,
      describe,
      {"num_hidden_layers",
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
       "attention_bias",
       "mlp_bias",
       "sliding_window",
       "use_sliding_window",
       "max_window_layers",
       "layer_types",
       "hidden_act",
       "bos_token_id",
       "eos_token_id",
       "pad_token_id",
       "torch_dtype",
       "dtype"},
      // pretraining_tp > 1 (transformers 4.x Llama) splits the projections into slices whose
      // results are summed: the same product in another summation order.
      {"pretraining_tp"}};
  return kDecl;
}

}  // namespace gptqd
