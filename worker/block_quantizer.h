// DESIGN.md §3 step 4 for one block: Hessians from a forward over the calibration
// activations, GPTQ per linear layer (true-sequential or not), RTN beside it for the
// report, then the forward with the quantized weights that feeds the next block.
#pragma once

#include <array>
#include <string>

#include "io/checkpoint.h"
#include "io/job_config.h"
#include "worker/bloom_block.h"
#include "worker/gptq.h"

namespace gptqd {

struct LinearResult {
  QuantizedLayer q;
  LayerStats stats;
};

using BlockResult = std::array<LinearResult, kNumLinears>;

GptqOptions gptq_options(const QuantConfig& q, const std::string& label);

// Calibration activations of a stage: `nseq` sequences of `seq` tokens, [nseq*seq, hidden].
struct Activations {
  int64_t nseq = 0, seq = 0;
  Buffer h;        // the block input; replaced by its output
  Buffer scratch;  // same size, for forwards that must not touch h
};

// Quantizes block `block` of the run. On return the backend weights in `w` are the
// dequantized GPTQ weights and act.h is the block's output computed with them.
BlockResult quantize_block(Backend& be, const BloomDims& dims, BlockWeights& w, Activations& act,
                           int64_t micro, BlockWorkspace& ws, const QuantConfig& q, int64_t block);

// Replaces w's backend weights with already-quantized ones (resume) and forwards act.h.
void forward_quantized_block(Backend& be, const BloomDims& dims, BlockWeights& w,
                             const std::array<std::vector<float>, kNumLinears>& dequant,
                             Activations& act, int64_t micro, BlockWorkspace& ws);

}  // namespace gptqd
