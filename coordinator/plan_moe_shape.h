// The shape of a mixture-of-experts model as `gptqd plan` needs it, read from its published
// config.json (issue 19 item 5): blocks, which of them are MoE, the experts, the attention's
// linears (MLA or grouped-query) and how the weights are stored. Only counts and sizes: the
// math of the forward (routing functions, RoPE scaling) does not change a plan, so those keys
// are not read here (the families in io/model/families/ read and check them to quantize).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gptqd {

struct MoeLinear {
  std::string name;
  int64_t rows = 0, cols = 0;
  int input = 0;  // linears with the same input share one Hessian
};

struct MoeShape {
  std::string model_type;
  int64_t blocks = 0, hidden = 0, vocab = 0;
  int64_t dense_blocks = 0;  // blocks with a dense MLP (first_k_dense_replace, mlp_only_layers,
                             // decoder_sparse_step)
  int64_t dense_ffn = 0;     // their MLP's intermediate size
  int64_t experts = 0, top_k = 0, expert_ffn = 0;
  int64_t shared_ffn = 0;            // all shared experts together; 0: none
  std::vector<MoeLinear> attention;  // the block's attention linears
  int64_t attention_inputs = 0;      // distinct inputs among them
  int64_t heads = 0;                 // attention heads (one score square each)
  int64_t score_width = 0;           // heads x (query-key dim + value dim): per key position
  double file_bytes_per_weight = 2;  // as stored: 2 for bf16, 1 + 4 / 128^2 for FP8 blocks
  std::string file_format = "bf16";  // what file_bytes_per_weight stands for
  int64_t nextn_layers = 0;          // DeepSeek's multi-token prediction layers (skipped)

  int64_t moe_blocks() const { return blocks - dense_blocks; }
  // Parameters of the linears of one block of each kind, the embedding and head, and the total
  // and active (top_k routed + shared) counts of the model.
  double attention_params() const;
  double moe_block_params() const;    // attention + router + shared + all routed experts
  double dense_block_params() const;  // attention + dense MLP
  double total_params() const;
  double active_params() const;
};

// True for the model types read by moe_shape_of: deepseek_v3, kimi_k2, mixtral, qwen2_moe,
// qwen3_moe.
bool is_moe_model_type(const std::string& model_type);

// <model_dir>/config.json's model_type ("" when the key is absent). InputError for a file that
// cannot be read or parsed.
std::string config_model_type(const std::string& model_dir);

// Reads <model_dir>/config.json. InputError naming the file and key for a missing or bad key,
// num_experts_per_tok > the expert count, or a layout the plan does not model (DeepSeek's
// moe_layer_freq other than 1).
MoeShape moe_shape_of(const std::string& model_dir);

}  // namespace gptqd
