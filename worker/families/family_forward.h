// The computing half of a model family (the declaring half is io/model/families/<family>.cpp): its
// embedding, block forward with a capture point before each true-sequential group, and final
// norm. worker/families/<family>.cpp defines one FamilyForward each.
#pragma once

#include <cstdint>
#include <vector>

#include "worker/block_forward.h"
#include "worker/model_weights.h"

namespace gptqd {

struct FamilyForward {
  // Floats of block scratch per token, one entry per BlockWorkspace buffer.
  std::vector<int64_t> (*workspace)(const ModelSpec& spec);
  // See block_forward().
  void (*block)(Backend& be, const ModelSpec& spec, const BlockWeights& w, int64_t batch,
                int64_t seq, float* h, BlockWorkspace& ws, const LinearCapture& capture,
                int stop_after, int start_after);
  // Whether a forward can resume right after group `group`'s capture (block_forward's
  // start_after), and then the BlockWorkspace buffers it reads there besides h (*live).
  bool (*resume_buffers)(const ModelSpec& spec, int group, std::vector<int>* live);
  // h [n, hidden] = the input of block 0 for n tokens of sequences of `seq` tokens (token t at
  // position t % seq). Ids are checked by the caller (embed_tokens).
  void (*embed)(Backend& be, const ModelSpec& spec, const EmbeddingWeights& e,
                const std::vector<int32_t>& tokens, int64_t seq, float* h);
  // out [n, hidden] = the final norm of h (a copy when the family has none); h untouched.
  void (*final_norm)(Backend& be, const ModelSpec& spec, const FinalNormWeights& f, int64_t n,
                     const float* h, float* out);
};

// The forward of spec's family: within Family::kMoe, DeepSeek-V3's (MLA) when the config has
// one (ModelConfig::mla), else the Llama-attention mixtures' (the Llama family's for their dense
// blocks, ModelSpec::dense_mlp). For a model with several block kinds, pass block b's kind
// (ModelSpec::block(b)).
const FamilyForward& family_forward(const ModelSpec& spec);

const FamilyForward& bloom_forward();
const FamilyForward& llama_forward();
const FamilyForward& opt_forward();
const FamilyForward& moe_forward();
const FamilyForward& deepseek_forward();  // worker/families/deepseek.cpp

// y[T, out] = x[T, in] W^T (+ b): the linear layer every family uses, in the backend's
// precision (Backend::forward_gemm).
void linear_forward(Backend& be, const LinearWeights& l, int64_t tokens, const float* x, float* y);

}  // namespace gptqd
