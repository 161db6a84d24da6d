// The typed config.json of every supported model family (DESIGN.md §5, §5b). Each family's
// reader (io/model/families/<family>.cpp) fills the fields it has, accepting every key spelling its
// released checkpoints use; the pipeline reads only these fields, never the JSON.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gptqd {

// The block architectures gptqd implements. Mistral, Qwen2/2.5, Qwen3 and SmolLM2 are
// Llama blocks with options (grouped KV heads, q/k/v biases, per-head q/k RMSNorm); Mixtral,
// Qwen2-MoE and Qwen3-MoE are Llama attention with a routed mixture of experts as the MLP;
// DeepSeek-V3 / Kimi-K2 are kMoe with multi-head latent attention (ModelConfig::mla).
enum class Family { kBloom, kLlama, kOpt, kMoe };
const char* family_name(Family f);  // "bloom", "llama", "opt", "moe"

// RoPE frequency rule (transformers' rope_scaling.rope_type; absent = kDefault).
enum class RopeType { kDefault, kLinear, kLlama3 };
struct RopeScaling {
  RopeType type = RopeType::kDefault;
  double factor = 1;            // linear: positions / factor; llama3: low-frequency divisor
  double low_freq_factor = 1;   // llama3
  double high_freq_factor = 4;  // llama3
  int64_t original_max_position_embeddings = 0;  // llama3
};

// YaRN rotary scaling as transformers' _compute_yarn_parameters reads rope_parameters
// (DeepSeek-V3 / Kimi-K2; worker/families/deepseek_rope.h computes it).
struct YarnRope {
  bool on = false;
  double factor = 1;
  int64_t original_max_position_embeddings = 0;
  double beta_fast = 32, beta_slow = 1;
  double mscale = 0, mscale_all_dim = 0;  // 0: absent
  double attention_factor = 0;            // 0: absent (derived from factor and the mscales)
  bool truncate = true;
};

// DeepSeek-V3 / Kimi-K2 (io/model/families/deepseek.cpp): multi-head latent attention and a
// sigmoid router with group-limited top-k. kv_lora_rank > 0 marks the family.
struct MlaConfig {
  int64_t q_lora_rank = 0;  // 0: plain q_proj (q_lora_rank null)
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0, qk_rope_head_dim = 0, v_head_dim = 0;
  bool rope_interleave = true;  // the rope dims laid out in pairs (x0, x1), (x2, x3), ...
  bool attention_bias = false;  // q_a_proj, kv_a_proj_with_mqa and o_proj carry biases
  YarnRope yarn;
  int64_t n_group = 1, topk_group = 1;  // experts in n_group groups; a token's top-k within
                                        // its topk_group best groups (top-2 sum per group)
  double routed_scaling_factor = 1;     // routed weights times this
  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
};

// Weights stored in FP8 (config.json's quantization_config with quant_method fp8: DeepSeek-V3,
// Kimi-K2; io/model/fp8_config.cpp reads it): each quantized linear X.weight is F8_E4M3 beside
// X.weight_scale_inv, fp32 [ceil(out / block_rows), ceil(in / block_cols)]. HfModel::read_f32
// dequantizes such a weight per block (kernels/fp8.h); every other tensor is read as stored.
struct Fp8Weights {
  bool on = false;                                  // quantization_config present
  int64_t block_rows = 0, block_cols = 0;           // weight_block_size [rows, cols]
  std::vector<std::string> modules_to_not_convert;  // modules kept unquantized (may be empty)
};

struct ModelConfig {
  std::string model_type;  // config.json's: bloom, llama, mistral, qwen2, qwen3, opt
  Family family = Family::kBloom;
  int64_t n_layer = 0, hidden = 0, n_head = 0, vocab = 0;
  int64_t n_kv_head = 0;  // key/value heads (grouped-query attention); n_head when absent
  int64_t head_dim = 0;   // given (Llama 3, Qwen3) or hidden / n_head
  int64_t ffn = 0;        // MLP width: 4 hidden (BLOOM), intermediate_size, ffn_dim (OPT)
  double norm_eps = 1e-5;
  bool tie_word_embeddings = true;  // the LM head is the token embedding
  int64_t max_position_embeddings = 0;

  // BLOOM
  bool apply_residual_connection_post_layernorm = false;
  // Llama family
  double rope_theta = 10000;
  RopeScaling rope_scaling;
  bool qkv_bias = false;       // q/k/v projections have biases (attention_bias; Qwen2 always)
  bool o_bias = false;         // output projection has a bias (attention_bias)
  bool mlp_bias = false;       // gate/up/down have biases
  bool qk_norm = false;        // per-head RMSNorm of q and k before RoPE (Qwen3)
  int64_t sliding_window = 0;  // Mistral: > 0 when attention is windowed (not implemented:
                               // jobs whose sequences exceed it are refused)
  // Mixtures of experts (mixtral, qwen2_moe, qwen3_moe): every block's MLP is a router over
  // n_experts SiLU-gated experts of width moe_ffn, of which each token takes experts_per_tok.
  int64_t n_experts = 0;        // num_local_experts (Mixtral) / num_experts (Qwen)
  int64_t experts_per_tok = 0;  // num_experts_per_tok (top-k)
  int64_t moe_ffn = 0;          // intermediate_size (Mixtral) / moe_intermediate_size (Qwen)
  int64_t shared_ffn = 0;       // shared_expert_intermediate_size (Qwen2-MoE); 0: no shared expert
  bool norm_topk_prob = false;  // top-k probabilities renormalised to sum 1 (Mixtral: always)
  MlaConfig mla;                // DeepSeek-V3 / Kimi-K2 (family kMoe with mla.kv_lora_rank > 0)
  Fp8Weights fp8;               // DeepSeek-V3 / Kimi-K2 released checkpoints
  // [n_layer] (or empty: none): the MoE family's blocks whose MLP is dense (a gated MLP of width
  // ffn): DeepSeek-V3's first_k_dense_replace, Qwen2/3-MoE's mlp_only_layers and
  // decoder_sparse_step. The blocks then come in two kinds (ModelSpec::block()).
  std::vector<bool> dense_mlp_blocks;
  // OPT
  bool do_layer_norm_before = true;  // pre-LN (every OPT but 350m)
  bool enable_bias = true;           // the Linears have biases
  bool final_layer_norm = true;      // the decoder ends with a LayerNorm (pre-LN and not removed)

  int64_t bos_token_id = -1, eos_token_id = -1, pad_token_id = -1;  // -1: none
  std::string torch_dtype;                                          // as in the file, may be empty
  std::string json;  // the config.json text, verbatim
};

// Reads config.json of any supported family: dispatches on model_type (BLOOM when absent, as
// the original bigscience files have none). An unsupported model_type is refused naming it and
// the supported ones; every other error is an InputError "<source_name>: ..." naming the key.
ModelConfig parse_model_config(const std::string& json_text, const std::string& source_name);
// Reads and parses <model_dir>/config.json.
ModelConfig load_model_config(const std::string& model_dir);

// The model_type values gptqd reads, comma-separated, for messages and --help.
std::string supported_model_types();

}  // namespace gptqd
