#include "worker/perplexity.h"

#include <algorithm>
#include <cmath>

#include "base/check.h"
#include "kernels/buffer.h"
#include "worker/block_forward.h"
#include "worker/embedding.h"
#include "worker/weight_prefetch.h"

namespace gptqd {
namespace {

// Logits of at most this many floats exist at once: the LM head runs over the positions of a
// window in chunks (BLOOM's vocabulary of 250,880 would need 2 GB for a 2048-token window).
constexpr int64_t kMaxLogitFloats = int64_t{1} << 24;

// Mean next-token NLL of one window whose final hidden states (before ln_f) are h [seqlen, hidden].
double window_loss(Backend& be, const ModelSpec& d, const FinalNormWeights& fin,
                   const EmbeddingWeights& emb, const float* h, const int32_t* tokens,
                   int64_t seqlen, Buffer& normed, Buffer& logits, std::vector<float>& host) {
  const int64_t preds = seqlen - 1;  // position t predicts token t + 1; the last predicts nothing
  const int64_t chunk = normed.size() / d.hidden;
  double sum = 0;
  for (int64_t t0 = 0; t0 < preds; t0 += chunk) {
    const int64_t n = std::min(chunk, preds - t0);
    lm_head(be, d, fin, emb, n, h + t0 * d.hidden, normed.data(), logits.data());
    be.to_host(host.data(), logits.data(), n * d.vocab);
    for (int64_t t = 0; t < n; ++t) {
      const float* row = host.data() + t * d.vocab;
      const int32_t label = tokens[t0 + t + 1];
      float mx = row[0];
      for (int64_t v = 1; v < d.vocab; ++v) mx = std::max(mx, row[v]);
      // exp in fp32 (each term within an ulp; the double exp was half the evaluation time of
      // a small model), the sum and the log in double
      double se = 0;
      for (int64_t v = 0; v < d.vocab; ++v) se += std::exp(row[v] - mx);
      sum += std::log(se) + static_cast<double>(mx) - static_cast<double>(row[label]);
    }
  }
  return sum / static_cast<double>(preds);
}

}  // namespace

std::vector<double> window_nlls(Backend& be, const HfModel& model, const ModelSpec& d,
                                const std::vector<int32_t>& windows, int64_t seqlen,
                                const WindowNllOptions& opt) {
  GPTQD_CHECK(seqlen >= 2, "perplexity needs windows of at least 2 tokens, not {}", seqlen);
  GPTQD_CHECK(static_cast<int64_t>(windows.size()) % seqlen == 0,
              "{} tokens are not whole windows of {}", windows.size(), seqlen);
  const int64_t nwin = static_cast<int64_t>(windows.size()) / seqlen;
  std::vector<double> out(static_cast<size_t>(nwin));
  if (nwin == 0) return out;
  const int64_t per_pass = opt.windows_per_pass > 0 ? std::min(opt.windows_per_pass, nwin) : nwin;
  const int64_t micro = std::min(per_pass, std::max<int64_t>(1, opt.micro_tokens / seqlen));

  // The next block's weights are read on a background thread while this one computes (block
  // 0's while the embedding loads).
  BlockPrefetcher weights(be, model, d);
  if (d.n_layer > 0) weights.prefetch(0);
  const EmbeddingWeights emb = load_embedding_weights(be, model, d);
  if (opt.embedding_check) opt.embedding_check(emb.digest);
  const FinalNormWeights fin = load_final_norm_weights(be, model, d);
  Buffer h(be, per_pass * seqlen * d.hidden);
  BlockWorkspace ws(be, d, micro * seqlen);
  const int64_t head_rows = std::max<int64_t>(1, std::min(seqlen - 1, kMaxLogitFloats / d.vocab));
  Buffer normed(be, head_rows * d.hidden);
  Buffer logits(be, head_rows * d.vocab);
  std::vector<float> host(static_cast<size_t>(head_rows * d.vocab));

  for (int64_t w0 = 0; w0 < nwin; w0 += per_pass) {
    const int64_t n = std::min(per_pass, nwin - w0);
    const auto first = windows.begin() + w0 * seqlen;
    embed_tokens(be, d, emb, std::vector<int32_t>(first, first + n * seqlen), seqlen, h.data());
    for (int64_t b = 0; b < d.n_layer; ++b) {
      BlockWeights w = weights.take(b);
      if (b + 1 < d.n_layer) {
        weights.prefetch(b + 1);
      } else if (w0 + per_pass < nwin) {
        weights.prefetch(0);
      }
      if (opt.hook) opt.hook(b, w);
      block_forward_all(be, d.block(b), w, n, seqlen, micro, h.data(), h.data(), ws);
    }
    for (int64_t i = 0; i < n; ++i) {
      out[static_cast<size_t>(w0 + i)] =
          window_loss(be, d, fin, emb, h.data() + i * seqlen * d.hidden,
                      windows.data() + (w0 + i) * seqlen, seqlen, normed, logits, host);
    }
  }
  return out;
}

double perplexity_from_nlls(const std::vector<double>& nlls) {
  GPTQD_CHECK(!nlls.empty(), "perplexity of no windows");
  double sum = 0;
  for (double v : nlls) sum += v;
  return std::exp(sum / static_cast<double>(nlls.size()));
}

}  // namespace gptqd
