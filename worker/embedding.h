// Embedding (stage 0) and the final norm + LM head (last stage, evaluation), for any family.
#pragma once

#include <cstdint>
#include <vector>

#include "io/model/model_spec.h"
#include "worker/model_weights.h"

namespace gptqd {

// h [ntokens, hidden] = the input of block 0 (the family's embedding) for whole sequences of
// `seq` tokens. Token ids are checked against the vocabulary (an id out of range names itself
// and its position).
void embed_tokens(Backend& be, const ModelSpec& spec, const EmbeddingWeights& e,
                  const std::vector<int32_t>& tokens, int64_t seq, float* h);

// logits [ntokens, vocab] = final_norm(h) head^T, head the untied lm_head or the token table;
// h is left untouched, `normed` [ntokens, hidden] is scratch.
void lm_head(Backend& be, const ModelSpec& spec, const FinalNormWeights& f,
             const EmbeddingWeights& e, int64_t ntokens, const float* h, float* normed,
             float* logits);

}  // namespace gptqd
