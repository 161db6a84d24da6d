// Per-element arithmetic shared by the CPU and CUDA backends: the GPTQ
// quantizer (DESIGN.md §4), rounding, clamping and BLOOM's GELU. Everything
// here is __host__ __device__ so the GPU runs exactly what the CPU tests check.
#pragma once

#include <cmath>

#include "kernels/half.h"

namespace gptqd {

// Round half to even, as torch.round does (rintf under the default rounding mode).
GPTQD_HD float round_even(float x) { return rintf(x); }

GPTQD_HD float clampf(float x, float lo, float hi) { return x < lo ? lo : (x > hi ? hi : x); }

GPTQD_HD int max_code(int bits) { return (1 << bits) - 1; }

// The reference's range folding (IST-DASLab quant.py find_params): a symmetric
// range becomes [-max(|xmin|, xmax), max(|xmin|, xmax)] (when xmin < 0), and an
// all-zero range becomes [-1, 1]. Idempotent. The mse_clip search shrinks the
// folded range, so it is exposed on its own.
GPTQD_HD void fold_range(bool sym, float* xmin, float* xmax) {
  if (sym) {
    *xmax = fmaxf(fabsf(*xmin), *xmax);
    if (*xmin < 0) *xmin = -*xmax;
  }
  if (*xmin == 0 && *xmax == 0) {
    *xmin = -1;
    *xmax = 1;
  }
}

// Scale and zero of one row's group from its min and max (already folded with 0
// as the reference does: xmin = min(min(w), 0), xmax = max(max(w), 0)).
GPTQD_HD void quant_params_from_range(float xmin, float xmax, int maxq, bool sym, float* scale,
                                      float* zero) {
  fold_range(sym, &xmin, &xmax);
  *scale = (xmax - xmin) / maxq;
  *zero = sym ? (maxq + 1) / 2.0f : round_even(-xmin / *scale);
}

// Step i of the mse_clip grid search (quant.py's mse loop): the folded range
// [xmin, xmax] shrunk by p = 1 - i / grid, p rounded to fp32 first as torch does
// for a Python scalar times an fp32 tensor. sym_zero is the symmetric zero
// (quant_params_from_range's), kept as the reference keeps it.
GPTQD_HD void shrunk_quant_params(float xmin, float xmax, int i, int grid, int maxq, bool sym,
                                  float sym_zero, float* scale, float* zero) {
  const float p = static_cast<float>(1.0 - static_cast<double>(i) / grid);
  const float xmin1 = p * xmin;
  const float xmax1 = p * xmax;
  *scale = (xmax1 - xmin1) / maxq;
  *zero = sym ? sym_zero : round_even(-xmin1 / *scale);
}

// Integer code of w: clamp(round(w / scale) + zero, 0, maxq).
GPTQD_HD float quant_code(float w, float scale, float zero, int maxq) {
  return clampf(round_even(w / scale) + zero, 0.0f, static_cast<float>(maxq));
}

GPTQD_HD float dequant_code(float code, float scale, float zero) { return scale * (code - zero); }

// quantize then dequantize, the reference's quantize().
GPTQD_HD float fake_quant(float w, float scale, float zero, int maxq) {
  return dequant_code(quant_code(w, scale, zero, maxq), scale, zero);
}

// BLOOM's GELU (bloom_gelu_forward in transformers):
// x * 0.5 * (1 + tanh(0.79788456 * x * (1 + 0.044715 * x * x))).
GPTQD_HD float gelu_bloom(float x) {
  return x * 0.5f * (1.0f + tanhf(0.79788456f * x * (1.0f + 0.044715f * x * x)));
}

}  // namespace gptqd
