// The weights of one BLOOM block (and of the embedding / final norm), loaded from
// an HF directory as fp32 onto a backend. Linear weights keep a host copy of the
// original values: GPTQ reads them, and the backend copy is replaced by the
// quantized weights as each layer is quantized.
#pragma once

#include <array>
#include <vector>

#include "io/hf_model.h"
#include "kernels/buffer.h"
#include "worker/bloom_dims.h"

namespace gptqd {

struct LinearWeights {
  int64_t out = 0, in = 0;
  std::vector<float> host_w;  // original weights [out, in]
  std::vector<float> host_b;  // [out]
  Buffer w;                   // what the forward uses [out, in]
  Buffer b;                   // [out]
};

struct BlockWeights {
  Buffer ln_in_w, ln_in_b, ln_post_w, ln_post_b;
  std::array<LinearWeights, kNumLinears> linears;
};

struct EmbeddingWeights {
  Buffer table;  // [vocab, hidden]; also the tied LM head
  Buffer ln_w, ln_b;
};

struct FinalNormWeights {
  Buffer ln_w, ln_b;
};

// Reads block `block` (only its tensors' byte ranges). Shapes are checked against dims.
BlockWeights load_block_weights(Backend& be, const HfModel& model, const BloomDims& dims,
                                int64_t block);
EmbeddingWeights load_embedding_weights(Backend& be, const HfModel& model, const BloomDims& dims);
FinalNormWeights load_final_norm_weights(Backend& be, const HfModel& model, const BloomDims& dims);

// Shapes [out, in] of the four linears, in block_linears() order.
std::array<std::array<int64_t, 2>, kNumLinears> linear_shapes(const BloomDims& dims);

// Checks that every tensor the job needs is present with the right shape, reading
// headers only; throws InputError naming the first missing or mis-shaped tensor.
void validate_model_tensors(const HfModel& model, const BloomDims& dims);

}  // namespace gptqd
