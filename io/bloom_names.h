// The one table of BLOOM tensor names (HF transformers' BloomModel). Canonical
// names carry no "transformer." prefix, as in the released bigscience
// checkpoints; HfModel resolves either spelling in the files to these.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace gptqd {

// The tensors of one block (h.<i>.*).
enum class BlockTensor {
  InputLnWeight,
  InputLnBias,
  QkvWeight,
  QkvBias,
  DenseWeight,
  DenseBias,
  PostLnWeight,
  PostLnBias,
  H4hWeight,
  H4hBias,
  FourHhWeight,
  FourHhBias
};
constexpr int kNumBlockTensors = 12;

// Every BlockTensor in the order of the enum.
const std::array<BlockTensor, kNumBlockTensors>& all_block_tensors();

// The name inside a block: "self_attention.query_key_value.weight".
const char* block_tensor_suffix(BlockTensor t);
// Canonical, no prefix: "h.3.self_attention.query_key_value.weight". Needs block >= 0.
std::string block_tensor_name(int64_t block, BlockTensor t);

extern const char* const kWordEmbeddings;  // "word_embeddings.weight"
extern const char* const kEmbLnWeight;     // "word_embeddings_layernorm.weight"
extern const char* const kEmbLnBias;       // "word_embeddings_layernorm.bias"
extern const char* const kFinalLnWeight;   // "ln_f.weight"
extern const char* const kFinalLnBias;     // "ln_f.bias"
// The prefix that BloomForCausalLM checkpoints put before every name above.
extern const char* const kTransformerPrefix;  // "transformer."

// The four linear layers of a block, in true-sequential order, with their HF module names:
// "self_attention.query_key_value", "self_attention.dense", "mlp.dense_h_to_4h",
// "mlp.dense_4h_to_h".
struct LinearName {
  const char* module;
  BlockTensor weight;
  BlockTensor bias;
};
const std::array<LinearName, 4>& block_linears();

// Every canonical tensor name of an n_layer BLOOM model (embeddings, their
// layer norm, the blocks in order, ln_f); the tied LM head is not listed.
std::vector<std::string> bloom_tensor_names(int64_t n_layer);

// The canonical form of a name found in a file: strips a leading "transformer.".
std::string canonical_tensor_name(const std::string& name_in_file);

}  // namespace gptqd
