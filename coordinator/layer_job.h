// `gptqd layer`: GPTQ of one linear layer from a safetensors file, for users
// who debug one layer and for tests and benchmarks.
//
// Input tensors: `weight` [out, in] and `inputs` [tokens, in] (F32, F16 or
// BF16), optional `bias` [out] (same dtypes). Every token row of `inputs` is
// one sample: H = (2 / tokens) X^T X, accumulated in fp32 (DESIGN.md §4; the
// reference's add_batch with each token counted as a sample). The factor
// cancels in GPTQ's choices (damping is relative to mean(diag H)); it sets the
// units of the loss and of the output errors.
//
// Output tensors: `codes` U8 [out, in] (original column order), `scales` and
// `zeros` F32 [groups, out], `g_idx` I32 [in], `perm` I32 [in] (identity
// without act_order), `dequant` F32 [out, in], `loss` F32 [1] (the sum of the
// per-column losses), and `bias` F32 [out] when the input has one. The
// metadata records the settings, the damp used and both output errors.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "worker/gptq.h"

namespace gptqd {

struct LayerOptions {
  std::string in_path, out_path;
  GptqOptions gptq;  // label: set to in_path by quantize_layer_file when empty
  int threads = 0;   // CPU backend threads; <= 0: all cores
};

struct LayerReport {
  int64_t rows = 0, cols = 0, tokens = 0;
  double loss = 0;       // GPTQ's loss (sum of per-column losses)
  double gptq_err = 0;   // trace((W - Q) H (W - Q)^T) for GPTQ's Q
  double rtn_err = 0;    // the same for round to nearest
  double damp_used = 0;  // damp_percent after retries
  double seconds_read = 0, seconds_hessian = 0, seconds_gptq = 0, seconds_total = 0;
  GptqSeconds gptq_phases;
};

LayerReport quantize_layer_file(const LayerOptions& opt);

// One line: file, shape, tokens, settings, loss, output errors GPTQ vs RTN,
// damp, time.
std::string layer_summary(const LayerOptions& opt, const LayerReport& r);

}  // namespace gptqd
