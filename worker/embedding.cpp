#include "worker/embedding.h"

#include "base/check.h"
#include "worker/families/family_forward.h"

namespace gptqd {

void embed_tokens(Backend& be, const ModelSpec& d, const EmbeddingWeights& e,
                  const std::vector<int32_t>& tokens, int64_t seq, float* h) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  for (int64_t t = 0; t < n; ++t) {
    const int32_t id = tokens[t];
    GPTQD_INPUT_CHECK(id >= 0 && id < d.vocab,
                      "token id {} at position {} is outside the vocabulary (size {})", id, t,
                      d.vocab);
  }
  family_forward(d).embed(be, d, e, tokens, seq, h);
}

void lm_head(Backend& be, const ModelSpec& d, const FinalNormWeights& f, const EmbeddingWeights& e,
             int64_t n, const float* h, float* normed, float* logits) {
  family_forward(d).final_norm(be, d, f, n, h, normed);
  const float* head = f.lm_head.size() > 0 ? f.lm_head.data() : e.table().data();
  be.gemm(false, true, n, d.vocab, d.hidden, 1.0f, normed, d.hidden, head, d.hidden, 0.0f, logits,
          d.vocab);
}

}  // namespace gptqd
