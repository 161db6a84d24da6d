#include "worker/embedding.h"

#include "kernels/check.h"

namespace gptqd {

void embed_tokens(Backend& be, const BloomDims& d, const EmbeddingWeights& e,
                  const std::vector<int32_t>& tokens, float* h) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  for (int64_t t = 0; t < n; ++t) {
    const int32_t id = tokens[t];
    GPTQD_INPUT_CHECK(id >= 0 && id < d.vocab,
                      "token id {} at position {} is outside the vocabulary (size {})", id, t,
                      d.vocab);
    be.copy(h + t * d.hidden, e.table.data() + static_cast<int64_t>(id) * d.hidden, d.hidden);
  }
  be.layer_norm(n, d.hidden, h, e.ln_w.data(), e.ln_b.data(), d.ln_eps, h);
}

void lm_head(Backend& be, const BloomDims& d, const FinalNormWeights& f, const EmbeddingWeights& e,
             int64_t n, const float* h, float* normed, float* logits) {
  be.layer_norm(n, d.hidden, h, f.ln_w.data(), f.ln_b.data(), d.ln_eps, normed);
  be.gemm(false, true, n, d.vocab, d.hidden, 1.0f, normed, d.hidden, e.table.data(), d.hidden, 0.0f,
          logits, d.vocab);
}

}  // namespace gptqd
