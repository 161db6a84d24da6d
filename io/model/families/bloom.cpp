// BLOOM (DESIGN.md §5): config.json with the legacy key spellings of the released checkpoints,
// tensors without prefix (bigscience) or under "transformer." (BloomForCausalLM), the tied head.
#include "base/check.h"
#include "io/model/config_json.h"
#include "io/model/families/family_decl.h"

namespace gptqd {
namespace {

ModelConfig parse(const nlohmann::json& j, const std::string&, const std::string& src) {
  ModelConfig c;
  c.n_layer = config_positive(j, {"n_layer", "num_hidden_layers"}, src);
  // HF's BloomConfig lets a legacy n_embed override hidden_size; here both must agree.
  c.hidden = config_positive(j, {"hidden_size", "n_embed"}, src);
  c.n_head = config_positive(j, {"n_head", "num_attention_heads"}, src);
  c.vocab = config_positive(j, {"vocab_size"}, src);
  GPTQD_INPUT_CHECK(c.hidden % c.n_head == 0,
                    "{}: hidden size {} is not divisible by the number of heads {}", src, c.hidden,
                    c.n_head);
  c.n_kv_head = c.n_head;
  c.head_dim = c.hidden / c.n_head;
  c.ffn = 4 * c.hidden;
  c.norm_eps = config_positive_number(j, "layer_norm_epsilon", 1e-5, src);
  c.apply_residual_connection_post_layernorm =
      config_bool(j, "apply_residual_connection_post_layernorm", false, src);
  // transformers 5.x writes the tie explicitly; BLOOM's head is always the embedding.
  GPTQD_INPUT_CHECK(config_bool(j, "tie_word_embeddings", true, src),
                    "{}: tie_word_embeddings false: BLOOM's LM head is its token embedding "
                    "(an untied BLOOM head is not supported)",
                    src);
  c.bos_token_id = config_optional_int(j, "bos_token_id", 1, src);
  c.eos_token_id = config_optional_int(j, "eos_token_id", 2, src);
  c.pad_token_id = config_optional_int(j, "pad_token_id", 3, src);
  // transformers >= 4.56 writes "dtype" where older versions wrote "torch_dtype".
  c.torch_dtype = config_string(j, "torch_dtype", config_string(j, "dtype", "", src), src);
  return c;
}

void describe(ModelSpec& s) {
  const int64_t h = s.hidden, f = s.ffn;
  s.strip_prefixes = {"transformer."};
  s.hf_prefix = "transformer.";
  s.block_prefix = "h.";
  s.block_norms = {{"input_layernorm.weight", {h}},
                   {"input_layernorm.bias", {h}},
                   {"post_attention_layernorm.weight", {h}},
                   {"post_attention_layernorm.bias", {h}}};
  // Fused qkv, rows grouped per head as [n_head, 3, head_dim].
  s.linears = {{"self_attention.query_key_value", 3 * h, h, true, 0},
               {"self_attention.dense", h, h, true, 1},
               {"mlp.dense_h_to_4h", f, h, true, 2},
               {"mlp.dense_4h_to_h", h, f, true, 3}};
  s.embedding = {{"word_embeddings.weight", {s.vocab, h}},
                 {"word_embeddings_layernorm.weight", {h}},
                 {"word_embeddings_layernorm.bias", {h}}};
  s.final_norm = {{"ln_f.weight", {h}}, {"ln_f.bias", {h}}};
}

}  // namespace

const FamilyDecl& bloom_family() {
  static const FamilyDecl kDecl{
      Family::kBloom,
      {"bloom"},
      parse,
      describe,
      {"n_layer", "num_hidden_layers", "hidden_size", "n_embed", "n_head", "num_attention_heads",
       "vocab_size", "layer_norm_epsilon", "apply_residual_connection_post_layernorm",
       "tie_word_embeddings", "bos_token_id", "eos_token_id", "pad_token_id", "torch_dtype",
       "dtype"},
      // Megatron-DeepSpeed training switches kept in the released files: fused kernels and
      // tensor-parallel slicing (pretraining_tp with slow_but_exact only reorders sums), and
      // n_inner / seq_length, which transformers' BLOOM never reads (its MLP is 4 x hidden).
      {"pretraining_tp", "slow_but_exact", "masked_softmax_fusion", "offset_alibi",
       "attention_softmax_in_fp32", "bias_dropout_fusion", "skip_bias_add", "skip_bias_add_qkv",
       "n_inner", "seq_length"}};
  return kDecl;
}

}  // namespace gptqd
