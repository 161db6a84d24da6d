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
// Equivalent to reading every tensor of block_tensor_specs() with read_block_tensor() (so
// the first bad tensor in that order raises its InputError) and assemble_block_weights()
// with uploads from the vectors read. worker/weight_prefetch.h does the same on a thread.
BlockWeights load_block_weights(Backend& be, const HfModel& model, const BloomDims& dims,
                                int64_t block);

// One tensor of a block and the shape the file must hold for it.
struct BlockTensorSpec {
  BlockTensor tensor = BlockTensor::InputLnWeight;
  std::vector<int64_t> shape;
  int64_t numel() const;
};

// The tensors of a block in BlockTensor order (entry i is all_block_tensors()[i]), with the
// shapes dims implies (linears from linear_shapes()). The one list the loaders read.
std::array<BlockTensorSpec, kNumBlockTensors> block_tensor_specs(const BloomDims& dims);

// Tensor `spec` of block `block` as fp32 (HfModel::read_f32: throws InputError naming the
// file, tensor, expected and actual shape on a mismatch). Thread-safe as HfModel's const
// methods are; touches no backend.
std::vector<float> read_block_tensor(const HfModel& model, int64_t block,
                                     const BlockTensorSpec& spec);

// A block's tensors in host memory, indexed as block_tensor_specs().
using BlockHostTensors = std::array<std::vector<float>, kNumBlockTensors>;

// Builds the BlockWeights of a block read into `host`: each backend Buffer is uploaded
// from upload[i] (spec i's numel floats of host memory: host[i].data() or a copy of it,
// e.g. a staging buffer from Backend::alloc_host); the linears' host_w / host_b are moved
// out of `host`, the layer norms' vectors dropped. Needs host[i].size() == spec i's numel.
// Calls the backend, so only from the thread that owns it.
BlockWeights assemble_block_weights(Backend& be, const BloomDims& dims, BlockHostTensors host,
                                    const std::array<const float*, kNumBlockTensors>& upload);

EmbeddingWeights load_embedding_weights(Backend& be, const HfModel& model, const BloomDims& dims);
FinalNormWeights load_final_norm_weights(Backend& be, const HfModel& model, const BloomDims& dims);

// Shapes [out, in] of the four linears, in block_linears() order.
std::array<std::array<int64_t, 2>, kNumLinears> linear_shapes(const BloomDims& dims);

// Checks that every tensor the job needs is present with the right shape, reading
// headers only; throws InputError naming the first missing or mis-shaped tensor.
void validate_model_tensors(const HfModel& model, const BloomDims& dims);

}  // namespace gptqd
