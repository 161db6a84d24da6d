// Perplexity as the GPTQ paper measures it (IST-DASLab/gptq bloom.py, bloom_eval): the eval
// text is cut into non-overlapping windows of seqlen tokens (io/job/calibration.h eval_windows);
// each window runs through the whole model on its own; its loss is the mean next-token NLL
// over its seqlen - 1 predictions; and
//   ppl = exp(sum_w loss_w * seqlen / (nwin * seqlen)) = exp(mean_w loss_w).
// The model's linear weights can be replaced block by block (RTN, dequantized GPTQ) by a hook.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "io/model/hf_model.h"
#include "io/model/model_spec.h"
#include "kernels/backend.h"
#include "worker/model_weights.h"

namespace gptqd {

// Called once per block and pass, after the block's original weights are loaded and before
// the block runs: may replace any linear's forward weights (w.linears[i].w) with
// set_linear_weights. w.linears[i].host_w keeps the original weights, w.digest their digest.
using BlockWeightsHook = std::function<void(int64_t block, BlockWeights& w)>;

struct WindowNllOptions {
  // Windows whose activations ([windows, seqlen, hidden] fp32) are held at once. The blocks
  // run one at a time over them, as the reference does (one block's weights in memory), and
  // are read again for each further pass. 0: all windows in one pass.
  int64_t windows_per_pass = 0;
  // Tokens per block forward call (a micro-batch holds max(1, this / seqlen) windows).
  int64_t micro_tokens = 2048;
  BlockWeightsHook hook;  // empty: the original weights
  // Called with the embedding's digest (EmbeddingWeights::digest) once it is read, before any
  // block runs; may throw to refuse the model. Empty: none.
  std::function<void(uint64_t digest)> embedding_check;
};

// The loss of every window: windows holds nwin * seqlen token ids back to back (nwin >= 0,
// seqlen >= 2); returns nwin values, loss_w = mean over t < seqlen - 1 of
// -log softmax(logits[t])[token[t + 1]], logits from embedding -> every block -> ln_f -> tied
// LM head in fp32 on `be`, the log-softmax in fp32 with a double sum. Each window's loss depends
// only on its own tokens (splitting the windows over ranks changes nothing but BLAS rounding).
// InputError for a token id outside the vocabulary; Error for a bad seqlen or size.
std::vector<double> window_nlls(Backend& be, const HfModel& model, const ModelSpec& dims,
                                const std::vector<int32_t>& windows, int64_t seqlen,
                                const WindowNllOptions& opt = {});

// exp(mean of the window losses), bloom_eval's formula. Error when `nlls` is empty.
double perplexity_from_nlls(const std::vector<double>& nlls);

}  // namespace gptqd
