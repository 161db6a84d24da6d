// OPT (DESIGN.md §5b): learned positions read at position + 2, pre-LN (or post-LN when
// do_layer_norm_before is false, as OPT-350m), ReLU MLP, biases everywhere, tied head.
// Keys and defaults as in transformers' configuration_opt.py.
#include "base/check.h"
#include "io/model/config_json.h"
#include "io/model/families/family_decl.h"
#include "io/model/json_strict.h"

namespace gptqd {
namespace {

using nlohmann::json;

// OPTLearnedPositionalEmbedding: row = position + 2 (Fairseq's padding offset).
constexpr int64_t kPositionOffset = 2;

ModelConfig parse(const json& j, const std::string&, const std::string& src) {
  ModelConfig c;
  c.n_layer = config_positive(j, {"num_hidden_layers"}, src);
  c.hidden = config_positive(j, {"hidden_size"}, src);
  c.n_head = config_positive(j, {"num_attention_heads"}, src);
  c.vocab = config_positive(j, {"vocab_size"}, src);
  c.ffn = config_positive(j, {"ffn_dim"}, src);
  c.max_position_embeddings = config_positive(j, {"max_position_embeddings"}, src);
  GPTQD_INPUT_CHECK(c.hidden % c.n_head == 0,
                    "{}: hidden_size {} is not divisible by num_attention_heads {}", src, c.hidden,
                    c.n_head);
  c.n_kv_head = c.n_head;
  c.head_dim = c.hidden / c.n_head;
  const int64_t proj = config_optional_int(j, "word_embed_proj_dim", c.hidden, src);
  GPTQD_INPUT_CHECK(proj == c.hidden,
                    "{}: word_embed_proj_dim {} differs from hidden_size {} (project_in/out, as "
                    "in OPT-350m, is not implemented)",
                    src, proj, c.hidden);
  GPTQD_INPUT_CHECK(config_bool(j, "layer_norm_elementwise_affine", true, src),
                    "{}: layer_norm_elementwise_affine false is not supported", src);
  const std::string act = config_string(j, "activation_function", "relu", src);
  GPTQD_INPUT_CHECK(act == "relu", "{}: activation_function {} is not supported (only relu)", src,
                    quote_name(act, 40));
  c.do_layer_norm_before = config_bool(j, "do_layer_norm_before", true, src);
  c.enable_bias = config_bool(j, "enable_bias", true, src);
  c.tie_word_embeddings = config_bool(j, "tie_word_embeddings", true, src);
  c.norm_eps = 1e-5;  // nn.LayerNorm's default: OPT's config has no epsilon
  c.final_layer_norm =
      c.do_layer_norm_before && !config_bool(j, "_remove_final_layer_norm", false, src);
  c.bos_token_id = config_token_id(j, "bos_token_id", 2, src);
  c.eos_token_id = config_token_id(j, "eos_token_id", 2, src);
  c.pad_token_id = config_token_id(j, "pad_token_id", 1, src);
  // transformers >= 4.56 writes "dtype" where older versions wrote "torch_dtype".
  c.torch_dtype = config_string(j, "torch_dtype", config_string(j, "dtype", "", src), src);
  return c;
}

void describe(ModelSpec& s) {
  const ModelConfig& c = s.config;
  const int64_t h = s.hidden;
  const bool b = c.enable_bias;
  s.strip_prefixes = {"model.decoder.", "decoder."};
  s.hf_prefix = "model.decoder.";
  s.block_prefix = "layers.";
  // nn.LayerNorm with its bias whatever enable_bias says (that flag is the Linears').
  s.block_norms = {{"self_attn_layer_norm.weight", {h}},
                   {"self_attn_layer_norm.bias", {h}},
                   {"final_layer_norm.weight", {h}},
                   {"final_layer_norm.bias", {h}}};
  s.linears = {{"self_attn.q_proj", h, h, b, 0}, {"self_attn.k_proj", h, h, b, 0},
               {"self_attn.v_proj", h, h, b, 0}, {"self_attn.out_proj", h, h, b, 1},
               {"fc1", s.ffn, h, b, 2},          {"fc2", h, s.ffn, b, 3}};
  s.embedding = {{"embed_tokens.weight", {s.vocab, h}},
                 {"embed_positions.weight", {c.max_position_embeddings + kPositionOffset, h}}};
  if (c.final_layer_norm)
    s.final_norm = {{"final_layer_norm.weight", {h}}, {"final_layer_norm.bias", {h}}};
  if (!c.tie_word_embeddings) s.lm_head = "lm_head.weight";
  s.max_seqlen = c.max_position_embeddings;
  s.max_seqlen_why =
      fmt::format("OPT has learned positions for {} tokens", c.max_position_embeddings);
}

}  // namespace

const FamilyDecl& opt_family() {
  static const FamilyDecl kDecl{
      Family::kOpt,
      {"opt"},
      parse,
      describe,
      {"num_hidden_layers", "hidden_size", "num_attention_heads", "vocab_size", "ffn_dim",
       "max_position_embeddings", "word_embed_proj_dim", "layer_norm_elementwise_affine",
       "activation_function", "do_layer_norm_before", "enable_bias", "tie_word_embeddings",
       "_remove_final_layer_norm", "bos_token_id", "eos_token_id", "pad_token_id", "torch_dtype",
       "dtype"},
      {}};
  return kDecl;
}

}  // namespace gptqd
