// Embedding (stage 0) and the final norm + tied LM head (last stage, evaluation).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/buffer.h"
#include "worker/bloom_dims.h"
#include "worker/bloom_weights.h"

namespace gptqd {

// h [ntokens, hidden] = LayerNorm_emb(Embedding(tokens)). Token ids are checked
// against the vocabulary (an id out of range names itself and its position).
void embed_tokens(Backend& be, const BloomDims& dims, const EmbeddingWeights& e,
                  const std::vector<int32_t>& tokens, float* h);

// logits [ntokens, vocab] = LayerNorm_f(h) E^T; h is left untouched.
void lm_head(Backend& be, const BloomDims& dims, const FinalNormWeights& f,
             const EmbeddingWeights& e, int64_t ntokens, const float* h, float* normed,
             float* logits);

}  // namespace gptqd
