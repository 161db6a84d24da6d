// DeepSeek-V3 / R1 and Kimi-K2 (one architecture: DeepseekV3ForCausalLM; Kimi-K2's config says
// model_type kimi_k2): multi-head latent attention (MLA) and a mixture of experts with a sigmoid
// router, group-limited selection and shared experts (DESIGN.md §5c). Key names and defaults as
// in transformers' configuration_deepseek_v3.py (5.25) and the released config.json files (4.x
// spellings: rope_scaling with "type", torch_dtype, num_nextn_predict_layers, topk_method,
// scoring_func, moe_layer_freq); tensor names as the released checkpoints store them.
//
// Block (worker/families/deepseek.cpp computes it):
//   attention  q = q_b(rmsnorm_1e-6(q_a(x)))  or  q_proj(x)         x = input_layernorm(h)
//              [c_kv, k_rope] = kv_a_proj_with_mqa(x);  [k_nope, v] = kv_b(rmsnorm_1e-6(c_kv))
//              RoPE (YaRN optional) on the rope part of q and on k_rope (shared by the heads)
//   MoE        sigmoid router with e_score_correction_bias (selection only), n_group/topk_group,
//              routed_scaling_factor; shared experts of width n_shared_experts x moe width.
// True-sequential groups: [q_a | q_proj, kv_a] -> [q_b, kv_b] -> [o] -> [every expert's gate and
// up, the shared experts' gate and up] -> [every expert's down, the shared experts' down]. q_a and
// kv_a share the normed input (one Hessian); q_b and kv_b read different latents (two).
//
// Dense blocks (first_k_dense_replace: 3 in DeepSeek-V3, 1 in Kimi-K2) are a second block kind
// (ModelSpec::block): MLA attention, then DeepseekV3MLP's gate/up/down of width intermediate_size.
//
// Not supported, each refused naming the key: moe_layer_freq != 1, rope types other than default
// and yarn, topk_method other than noaux_tc, scoring_func other than sigmoid, a
// quantization_config other than FP8 with block scales (io/model/fp8_config.h: the released FP8
// checkpoints are read, each linear dequantized on load by HfModel::read_f32). The
// multi-token-prediction layers (num_nextn_predict_layers; block indices >= num_hidden_layers in
// the shards, which transformers skips on load) are not read: only the declared tensors are.
#include <algorithm>
#include <vector>

#include "base/check.h"
#include "io/model/config_json.h"
#include "io/model/families/family_decl.h"
#include "io/model/families/llama_config.h"
#include "io/model/fp8_config.h"
#include "io/model/json_strict.h"

namespace gptqd {
namespace {

using nlohmann::json;

// A number >= 0 that may be absent or null (keeps `dflt`); YaRN's beta_* and mscale* are read so
// (transformers treats 0 as absent: `beta_fast or 32`, `if mscale and mscale_all_dim`).
double non_negative(const json& j, const char* key, double dflt, const std::string& src) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return dflt;
  GPTQD_INPUT_CHECK(it->is_number(), "{}: key '{}' is {}, expected a number", src, key,
                    json_type_name(*it));
  const double x = it->get<double>();
  GPTQD_INPUT_CHECK(x >= 0 && x < 1e300, "{}: key '{}' is {}, expected a number >= 0", src, key, x);
  return x;
}

// rope_theta and the YaRN settings, as transformers 5.x reads either spelling: a non-null legacy
// rope_scaling first, else rope_parameters; the type from rope_type, else type, else default.
// Keys of the object that the type does not use are refused (each could change the frequencies).
void parse_mla_rope(const json& j, const std::string& src, ModelConfig* c) {
  c->rope_theta = config_positive_number(j, "rope_theta", 10000, src);
  std::string key;
  const json* obj = rope_object(j, src, &key);
  if (obj == nullptr) return;
  const json& rs = *obj;
  const std::string where = src + " " + key;
  c->rope_theta = config_positive_number(rs, "rope_theta", c->rope_theta, where);
  const std::string type =
      config_string(rs, "rope_type", config_string(rs, "type", "default", where), where);
  std::vector<std::string> uses = {"rope_type", "type", "rope_theta"};
  if (type == "yarn") {
    YarnRope& y = c->mla.yarn;
    y.on = true;
    y.factor = config_positive_number(rs, "factor", 0, where);
    GPTQD_INPUT_CHECK(y.factor > 0, "{}: yarn scaling needs 'factor'", where);
    // transformers 5.x falls back to max_position_embeddings (and writes it into the object).
    y.original_max_position_embeddings = config_optional_int(rs, "original_max_position_embeddings",
                                                             c->max_position_embeddings, where);
    GPTQD_INPUT_CHECK(y.original_max_position_embeddings > 0,
                      "{}: yarn scaling needs original_max_position_embeddings (or "
                      "max_position_embeddings)",
                      where);
    y.beta_fast = non_negative(rs, "beta_fast", 0, where);
    y.beta_slow = non_negative(rs, "beta_slow", 0, where);
    if (y.beta_fast == 0) y.beta_fast = 32;
    if (y.beta_slow == 0) y.beta_slow = 1;
    y.mscale = non_negative(rs, "mscale", 0, where);
    y.mscale_all_dim = non_negative(rs, "mscale_all_dim", 0, where);
    y.attention_factor = non_negative(rs, "attention_factor", 0, where);
    y.truncate = config_bool(rs, "truncate", true, where);
    uses.insert(uses.end(), {"factor", "original_max_position_embeddings", "beta_fast", "beta_slow",
                             "mscale", "mscale_all_dim", "attention_factor", "truncate"});
  } else if (type != "default") {
    throw InputError(
        fmt::format("{}: {} type {} is not supported for {} (supported: default, yarn)", src, key,
                    quote_name(type, 40), c->model_type.empty() ? "deepseek_v3" : c->model_type));
  }
  for (const auto& [k, v] : rs.items()) {
    GPTQD_INPUT_CHECK(std::find(uses.begin(), uses.end(), k) != uses.end(),
                      "{}: key {} is not used by rope type {} in gptqd; it may change the "
                      "rotary frequencies, so the model is refused rather than read without it",
                      where, quote_name(k, 60), type);
  }
}

// A key that must hold `want` when present (a rule gptqd implements only one way).
void check_string(const json& j, const char* key, const std::string& want, const std::string& src,
                  const std::string& why) {
  const std::string v = config_string(j, key, want, src);
  GPTQD_INPUT_CHECK(v == want, "{}: {} {} is not supported ({} only: {})", src, key,
                    quote_name(v, 40), want, why);
}

// A derived key that transformers 5.x writes back (head_dim, qk_head_dim): accepted when it
// agrees with the keys it derives from.
void check_derived(const json& j, const char* key, int64_t want, const std::string& what,
                   const std::string& src) {
  const int64_t v = config_optional_int(j, key, want, src);
  GPTQD_INPUT_CHECK(v == want, "{}: {} is {}, but {} is {}", src, key, v, what, want);
}

void parse_attention(const json& j, const std::string& src, ModelConfig* c) {
  MlaConfig& m = c->mla;
  const auto q = j.find("q_lora_rank");
  GPTQD_INPUT_CHECK(q != j.end(),
                    "{}: key 'q_lora_rank' is missing (a number, or null for a plain q_proj)", src);
  m.q_lora_rank = q->is_null() ? 0 : config_positive(j, {"q_lora_rank"}, src);
  m.kv_lora_rank = config_positive(j, {"kv_lora_rank"}, src);
  m.qk_nope_head_dim = config_positive(j, {"qk_nope_head_dim"}, src);
  m.qk_rope_head_dim = config_positive(j, {"qk_rope_head_dim"}, src);
  m.v_head_dim = config_positive(j, {"v_head_dim"}, src);
  GPTQD_INPUT_CHECK(m.qk_rope_head_dim % 2 == 0,
                    "{}: qk_rope_head_dim {} must be even (rotary embeddings rotate pairs)", src,
                    m.qk_rope_head_dim);
  check_derived(j, "head_dim", m.qk_rope_head_dim, "qk_rope_head_dim", src);
  check_derived(j, "qk_head_dim", m.qk_head_dim(), "qk_nope_head_dim + qk_rope_head_dim", src);
  // MLA expands k and v to every head (kv_b_proj): a config with fewer KV heads cannot run.
  c->n_kv_head = config_optional_int(j, "num_key_value_heads", c->n_head, src);
  GPTQD_INPUT_CHECK(c->n_kv_head == c->n_head,
                    "{}: num_key_value_heads {} differs from num_attention_heads {}; MLA gives "
                    "every head its own keys and values (transformers cannot run this model)",
                    src, c->n_kv_head, c->n_head);
  c->head_dim = m.qk_head_dim();
  m.rope_interleave = config_bool(j, "rope_interleave", true, src);
  m.attention_bias = config_bool(j, "attention_bias", false, src);
}

void parse_moe(const json& j, const std::string& src, ModelConfig* c) {
  MlaConfig& m = c->mla;
  // 5.x's attribute_map reads num_local_experts as n_routed_experts.
  c->n_experts = config_positive(j, {"n_routed_experts", "num_local_experts"}, src);
  c->experts_per_tok = config_positive(j, {"num_experts_per_tok"}, src);
  c->moe_ffn = config_positive(j, {"moe_intermediate_size"}, src);
  const int64_t shared = config_optional_int(j, "n_shared_experts", 1, src);
  GPTQD_INPUT_CHECK(shared >= 0, "{}: n_shared_experts is {}, expected >= 0", src, shared);
  c->shared_ffn = shared * c->moe_ffn;
  c->norm_topk_prob = config_bool(j, "norm_topk_prob", true, src);
  m.routed_scaling_factor = config_positive_number(j, "routed_scaling_factor", 2.5, src);
  m.n_group = config_optional_int(j, "n_group", 8, src);
  m.topk_group = config_optional_int(j, "topk_group", 4, src);
  const int64_t e = c->n_experts, k = c->experts_per_tok, g = m.n_group;
  GPTQD_INPUT_CHECK(k <= e, "{}: num_experts_per_tok {} is larger than the {} experts ({})", src, k,
                    e, "n_routed_experts");
  GPTQD_INPUT_CHECK(g >= 1 && e % g == 0 && e / g >= 2,
                    "{}: n_group {} must divide n_routed_experts {} into groups of at least 2 "
                    "experts (each group is scored by its two best)",
                    src, g, e);
  GPTQD_INPUT_CHECK(m.topk_group >= 1 && m.topk_group <= g,
                    "{}: topk_group {} must be between 1 and n_group {}", src, m.topk_group, g);
  GPTQD_INPUT_CHECK(k <= m.topk_group * (e / g),
                    "{}: num_experts_per_tok {} is more than the {} experts of the topk_group {} "
                    "groups a token may use",
                    src, k, m.topk_group * (e / g), m.topk_group);
  check_string(j, "topk_method", "noaux_tc", src,
               "top-k of the sigmoid scores plus e_score_correction_bias within the best groups");
  check_string(j, "scoring_func", "sigmoid", src, "the router's scores are sigmoids");
  // Blocks 0..first_k_dense_replace-1 have DeepseekV3MLP(intermediate_size) (transformers 5.25:
  // layer_idx >= first_k_dense_replace is MoE; moe_layer_freq is not read there).
  const int64_t dense = config_optional_int(j, "first_k_dense_replace", 3, src);
  GPTQD_INPUT_CHECK(dense >= 0, "{}: first_k_dense_replace is {}, expected >= 0", src, dense);
  if (dense > 0) {
    GPTQD_INPUT_CHECK(c->ffn > 0,
                      "{}: first_k_dense_replace {} makes blocks 0..{} dense, but "
                      "intermediate_size (their MLP's width) is {}",
                      src, dense, std::min(dense, c->n_layer) - 1, c->ffn);
    c->dense_mlp_blocks.assign(static_cast<size_t>(c->n_layer), false);
    for (int64_t b = 0; b < std::min(dense, c->n_layer); ++b)
      c->dense_mlp_blocks[static_cast<size_t>(b)] = true;
  }
  // The released models' 1; transformers ignores the key, DeepSeek's own code would make more
  // blocks dense: refused rather than computed one way or the other.
  const int64_t freq = config_optional_int(j, "moe_layer_freq", 1, src);
  GPTQD_INPUT_CHECK(freq == 1,
                    "{}: moe_layer_freq {}: transformers ignores it and DeepSeek's own code makes "
                    "blocks dense with it; only 1 (the released models') is supported",
                    src, freq);
  const int64_t mtp = config_optional_int(j, "num_nextn_predict_layers",
                                          config_optional_int(j, "num_mtp_layers", 0, src), src);
  GPTQD_INPUT_CHECK(mtp >= 0, "{}: num_nextn_predict_layers is {}, expected >= 0", src, mtp);
}

ModelConfig parse(const json& j, const std::string& type, const std::string& src) {
  ModelConfig c;
  c.model_type = type;
  // The released checkpoints: FP8 e4m3 linears with block scales, dequantized on load.
  const auto qc = j.find("quantization_config");
  if (qc != j.end() && !qc->is_null()) c.fp8 = parse_fp8_config(*qc, src);
  c.n_layer = config_positive(j, {"num_hidden_layers"}, src);
  c.hidden = config_positive(j, {"hidden_size"}, src);
  c.n_head = config_positive(j, {"num_attention_heads"}, src);
  c.vocab = config_positive(j, {"vocab_size"}, src);
  // The dense MLP's width: only dense blocks (first_k_dense_replace) use it.
  c.ffn = config_optional_int(j, "intermediate_size", 18432, src);
  GPTQD_INPUT_CHECK(c.ffn >= 0, "{}: intermediate_size is {}", src, c.ffn);
  c.norm_eps = config_positive_number(j, "rms_norm_eps", 1e-6, src);
  c.max_position_embeddings = config_optional_int(j, "max_position_embeddings", 4096, src);
  c.tie_word_embeddings = config_bool(j, "tie_word_embeddings", false, src);
  parse_attention(j, src, &c);
  parse_mla_rope(j, src, &c);
  parse_moe(j, src, &c);
  const std::string act = config_string(j, "hidden_act", "silu", src);
  GPTQD_INPUT_CHECK(act == "silu", "{}: hidden_act {} is not supported (only silu)", src,
                    quote_name(act, 40));
  c.bos_token_id = config_token_id(j, "bos_token_id", -1, src);
  c.eos_token_id = config_token_id(j, "eos_token_id", -1, src);
  c.pad_token_id = config_token_id(j, "pad_token_id", -1, src);
  c.torch_dtype = config_string(j, "torch_dtype", config_string(j, "dtype", "", src), src);
  return c;
}

void describe(ModelSpec& s) {
  const ModelConfig& c = s.config;
  const MlaConfig& m = c.mla;
  const int64_t h = s.hidden, heads = s.n_head, e = c.n_experts;
  const bool b = m.attention_bias;
  s.strip_prefixes = {"model."};
  s.hf_prefix = "model.";
  s.block_prefix = "layers.";
  s.block_norms = {{"input_layernorm.weight", {h}}, {"post_attention_layernorm.weight", {h}}};
  if (m.q_lora_rank > 0)
    s.block_norms.push_back({"self_attn.q_a_layernorm.weight", {m.q_lora_rank}});
  s.block_norms.push_back({"self_attn.kv_a_layernorm.weight", {m.kv_lora_rank}});
  // The router and its correction bias stay in full precision: tensors, not linears.
  if (!s.dense_mlp) {
    s.block_norms.push_back({"mlp.gate.weight", {e, h}});
    s.block_norms.push_back({"mlp.gate.e_score_correction_bias", {e}});
  }
  // Inputs: 0 the normed hidden state (q_a or q_proj, kv_a), then q_b's and kv_b's latents, the
  // heads' output (o), each expert's routed rows.
  const int64_t q_out = heads * m.qk_head_dim();
  if (m.q_lora_rank > 0) {
    s.linears.push_back({"self_attn.q_a_proj", m.q_lora_rank, h, b, 0, 0});
  } else {
    s.linears.push_back({"self_attn.q_proj", q_out, h, false, 0, 0});
  }
  s.linears.push_back(
      {"self_attn.kv_a_proj_with_mqa", m.kv_lora_rank + m.qk_rope_head_dim, h, b, 0, 0});
  int input = 1;
  if (m.q_lora_rank > 0)
    s.linears.push_back({"self_attn.q_b_proj", q_out, m.q_lora_rank, false, 1, input++});
  s.linears.push_back({"self_attn.kv_b_proj", heads * (m.qk_nope_head_dim + m.v_head_dim),
                       m.kv_lora_rank, false, 1, input++});
  s.linears.push_back({"self_attn.o_proj", h, heads * m.v_head_dim, b, 2, input++});
  if (s.dense_mlp) {  // DeepseekV3MLP(intermediate_size): no biases
    s.linears.push_back({"mlp.gate_proj", s.ffn, h, false, 3, input});
    s.linears.push_back({"mlp.up_proj", s.ffn, h, false, 3, input++});
    s.linears.push_back({"mlp.down_proj", h, s.ffn, false, 4, input});
  }
  for (int64_t x = 0; !s.dense_mlp && x < e; ++x, ++input) {
    const std::string ex = "mlp.experts." + std::to_string(x) + ".";
    s.linears.push_back({ex + "gate_proj", c.moe_ffn, h, false, 3, input, static_cast<int>(x)});
    s.linears.push_back({ex + "up_proj", c.moe_ffn, h, false, 3, input, static_cast<int>(x)});
  }
  if (!s.dense_mlp && c.shared_ffn > 0) {
    s.linears.push_back({"mlp.shared_experts.gate_proj", c.shared_ffn, h, false, 3, input});
    s.linears.push_back({"mlp.shared_experts.up_proj", c.shared_ffn, h, false, 3, input});
    ++input;
  }
  for (int64_t x = 0; !s.dense_mlp && x < e; ++x, ++input) {
    s.linears.push_back({"mlp.experts." + std::to_string(x) + ".down_proj", h, c.moe_ffn, false, 4,
                         input, static_cast<int>(x)});
  }
  if (!s.dense_mlp && c.shared_ffn > 0) {
    s.linears.push_back({"mlp.shared_experts.down_proj", h, c.shared_ffn, false, 4, input});
  }
  s.embedding = {{"embed_tokens.weight", {s.vocab, h}}};
  s.final_norm = {{"norm.weight", {h}}};
  if (!c.tie_word_embeddings) s.lm_head = "lm_head.weight";
}

}  // namespace

const FamilyDecl& deepseek_family() {
  static const FamilyDecl kDecl{
      Family::kMoe,
      {"deepseek_v3", "kimi_k2"},
      parse,
      describe,
      {"num_hidden_layers",
       "hidden_size",
       "num_attention_heads",
       "num_key_value_heads",
       "vocab_size",
       "intermediate_size",
       "rms_norm_eps",
       "max_position_embeddings",
       "tie_word_embeddings",
       "q_lora_rank",
       "kv_lora_rank",
       "qk_nope_head_dim",
       "qk_rope_head_dim",
       "v_head_dim",
       "head_dim",
       "qk_head_dim",
       "rope_interleave",
       "attention_bias",
       "rope_theta",
       "rope_scaling",
       "rope_parameters",
       "n_routed_experts",
       "num_local_experts",
       "num_experts_per_tok",
       "moe_intermediate_size",
       "n_shared_experts",
       "norm_topk_prob",
       "routed_scaling_factor",
       "n_group",
       "topk_group",
       "topk_method",
       "scoring_func",
       "first_k_dense_replace",
       "moe_layer_freq",
       "num_nextn_predict_layers",
       "num_mtp_layers",
       "quantization_config",
       "hidden_act",
       "bos_token_id",
       "eos_token_id",
       "pad_token_id",
       "torch_dtype",
       "dtype"},
      // Training only (the load-balancing losses, returning router logits), the expert-parallel
      // size of DeepSeek's own inference code, and pretraining_tp (slices summed: the same product
      // in another order).
      {"aux_loss_alpha", "seq_aux", "router_aux_loss_coef", "output_router_logits", "ep_size",
       "pretraining_tp"}};
  return kDecl;
}

}  // namespace gptqd
