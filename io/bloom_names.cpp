#include "io/bloom_names.h"

#include "kernels/check.h"

namespace gptqd {

const char* const kWordEmbeddings = "word_embeddings.weight";
const char* const kEmbLnWeight = "word_embeddings_layernorm.weight";
const char* const kEmbLnBias = "word_embeddings_layernorm.bias";
const char* const kFinalLnWeight = "ln_f.weight";
const char* const kFinalLnBias = "ln_f.bias";
const char* const kTransformerPrefix = "transformer.";

const std::array<BlockTensor, kNumBlockTensors>& all_block_tensors() {
  static const std::array<BlockTensor, kNumBlockTensors> kAll = {
      BlockTensor::InputLnWeight, BlockTensor::InputLnBias,  BlockTensor::QkvWeight,
      BlockTensor::QkvBias,       BlockTensor::DenseWeight,  BlockTensor::DenseBias,
      BlockTensor::PostLnWeight,  BlockTensor::PostLnBias,   BlockTensor::H4hWeight,
      BlockTensor::H4hBias,       BlockTensor::FourHhWeight, BlockTensor::FourHhBias};
  return kAll;
}

const char* block_tensor_suffix(BlockTensor t) {
  switch (t) {
    case BlockTensor::InputLnWeight:
      return "input_layernorm.weight";
    case BlockTensor::InputLnBias:
      return "input_layernorm.bias";
    case BlockTensor::QkvWeight:
      return "self_attention.query_key_value.weight";
    case BlockTensor::QkvBias:
      return "self_attention.query_key_value.bias";
    case BlockTensor::DenseWeight:
      return "self_attention.dense.weight";
    case BlockTensor::DenseBias:
      return "self_attention.dense.bias";
    case BlockTensor::PostLnWeight:
      return "post_attention_layernorm.weight";
    case BlockTensor::PostLnBias:
      return "post_attention_layernorm.bias";
    case BlockTensor::H4hWeight:
      return "mlp.dense_h_to_4h.weight";
    case BlockTensor::H4hBias:
      return "mlp.dense_h_to_4h.bias";
    case BlockTensor::FourHhWeight:
      return "mlp.dense_4h_to_h.weight";
    case BlockTensor::FourHhBias:
      return "mlp.dense_4h_to_h.bias";
  }
  GPTQD_CHECK(false, "block_tensor_suffix: invalid BlockTensor {}", static_cast<int>(t));
  return "";
}

std::string block_tensor_name(int64_t block, BlockTensor t) {
  GPTQD_CHECK(block >= 0, "block_tensor_name: negative block {}", block);
  return "h." + std::to_string(block) + "." + block_tensor_suffix(t);
}

const std::array<LinearName, 4>& block_linears() {
  static const std::array<LinearName, 4> kLinears = {{
      {"self_attention.query_key_value", BlockTensor::QkvWeight, BlockTensor::QkvBias},
      {"self_attention.dense", BlockTensor::DenseWeight, BlockTensor::DenseBias},
      {"mlp.dense_h_to_4h", BlockTensor::H4hWeight, BlockTensor::H4hBias},
      {"mlp.dense_4h_to_h", BlockTensor::FourHhWeight, BlockTensor::FourHhBias},
  }};
  return kLinears;
}

std::vector<std::string> bloom_tensor_names(int64_t n_layer) {
  std::vector<std::string> names = {kWordEmbeddings, kEmbLnWeight, kEmbLnBias};
  for (int64_t b = 0; b < n_layer; ++b) {
    for (BlockTensor t : all_block_tensors()) names.push_back(block_tensor_name(b, t));
  }
  names.push_back(kFinalLnWeight);
  names.push_back(kFinalLnBias);
  return names;
}

std::string canonical_tensor_name(const std::string& name_in_file) {
  const std::string prefix = kTransformerPrefix;
  if (name_in_file.compare(0, prefix.size(), prefix) == 0)
    return name_in_file.substr(prefix.size());
  return name_in_file;
}

}  // namespace gptqd
