// The weights of one block (and of the embedding, final norm and head) of any family, loaded
// from an HF directory as fp32 onto a backend, laid out as the family's declarations
// (io/model/model_spec.h) list them. Linear weights keep a host copy of the original values: GPTQ
// reads them, and the backend copy is replaced by the quantized weights as each layer is
// quantized.
#pragma once

#include <vector>

#include "io/checkpoint/checkpoint_checksum.h"
#include "io/model/hf_model.h"
#include "io/model/model_spec.h"
#include "kernels/buffer.h"

namespace gptqd {

struct LinearWeights {
  int64_t out = 0, in = 0;
  std::vector<float> host_w;  // original weights [out, in]
  std::vector<float> host_b;  // [out]; empty when the layer has no bias
  // What the forward uses [out, in]: fp32 in w, or, when the backend's precision is fast, bf16
  // in w16 (half the memory; the fast GEMM rounds its operands to bf16 anyway, so the products
  // are the same bit for bit). The other one is empty. Written by set_linear_weights.
  Buffer w;
  Bf16Buffer w16;
  Buffer b;  // [out]; empty when the layer has no bias
};

// Copies `weights` (host, [out, in]) into the weights the forward uses, as LinearWeights says
// (allocating them on first use; bf16 through a device scratch of at most 64 MiB). Error when
// the size is not out * in.
void set_linear_weights(Backend& be, LinearWeights& lw, const std::vector<float>& weights);
void set_linear_weights(Backend& be, LinearWeights& lw, const float* weights);

struct BlockWeights {
  std::vector<Buffer> norms;           // spec.block_norms, in that order
  std::vector<LinearWeights> linears;  // spec.linears, in that order
  uint64_t digest = 0;                 // of the tensors as read (add_to_weights_digest)
};

struct EmbeddingWeights {
  std::vector<Buffer> tensors;  // spec.embedding; [0] the token table (and the tied LM head)
  const Buffer& table() const { return tensors.at(0); }
  uint64_t digest = 0;  // of spec.embedding as read (add_to_weights_digest)
};

struct FinalNormWeights {
  std::vector<Buffer> norm;  // spec.final_norm (may be empty)
  Buffer lm_head;            // the untied head [vocab, hidden]; empty when tied
};

// Reads block `block` (only its tensors' byte ranges). Shapes are checked against the spec.
// Equivalent to reading every tensor of spec.block_tensors(block) with read_block_tensor() into
// one digest (so the first bad tensor in that order raises its InputError) and
// assemble_block_weights() with uploads from the vectors read; `digest` is that digest.
// worker/weight_prefetch.h does the same on a thread.
BlockWeights load_block_weights(Backend& be, const HfModel& model, const ModelSpec& spec,
                                int64_t block);

// The weights digest of a block or of the embedding (the checkpoint's weights_digest,
// docs/checkpoint-format.md): ckpt::Hash64 (xxHash64, seed 0) over each of its tensors in the
// family's order (spec.block_tensors(), spec.embedding): the dtype's safetensors name
// (length-prefixed), the rank and each dim (uint64), then the tensor's bytes as the file stores
// them. So one changed bit of a weight changes it, and so does the same value in another dtype;
// the file, its name, its inode or mtime and the tensor's offset in it do not enter. Hashed as
// the bytes are converted (HfModel::read_f32 with a visitor), so it costs no second pass.
//
// Tensor `t` (a spec.block_tensors() or spec.embedding entry) as fp32 (HfModel::read_f32: throws
// InputError naming the file, tensor, expected and actual shape on a mismatch), added to
// `digest` when it is not null. Thread-safe as HfModel's const methods are; touches no backend.
std::vector<float> read_block_tensor(const HfModel& model, const TensorSpec& t,
                                     ckpt::Hash64* digest = nullptr);

// A block's tensors in host memory, indexed as spec.block_tensors().
using BlockHostTensors = std::vector<std::vector<float>>;

// Builds the BlockWeights of a block read into `host`: each backend Buffer is uploaded from
// upload[i] (tensor i's numel floats of host memory: host[i].data() or a copy of it, e.g. a
// staging buffer from Backend::alloc_host); the linears' host_w / host_b are moved out of
// `host`, the norms' vectors dropped. Needs host[i].size() == tensor i's numel. `spec` is the
// block's kind (ModelSpec::block(b)) for a model with several. Calls the backend, so only from
// the thread that owns it.
BlockWeights assemble_block_weights(Backend& be, const ModelSpec& spec, BlockHostTensors host,
                                    const std::vector<const float*>& upload);

// The embedding's tensors, with their digest.
EmbeddingWeights load_embedding_weights(Backend& be, const HfModel& model, const ModelSpec& spec);
FinalNormWeights load_final_norm_weights(Backend& be, const HfModel& model, const ModelSpec& spec);

// Checks that every tensor the job needs is present with the right shape, reading
// headers only; throws InputError naming the first missing or mis-shaped tensor.
void validate_model_tensors(const HfModel& model, const ModelSpec& spec);

}  // namespace gptqd
