// Per-element math of the Llama and OPT forwards that the CPU and CUDA backends share
// (STYLE: the arithmetic the GPU runs is the arithmetic the CPU tests check).
#pragma once

#include <cmath>

#ifdef __CUDACC__
#define GPTQD_NN_HD __host__ __device__ inline
#else
#define GPTQD_NN_HD inline
#endif

namespace gptqd {

// torch's silu: x * sigmoid(x), written as x / (1 + exp(-x)) (finite for every finite x: for
// x -> -inf, exp overflows to inf and the quotient is -0).
GPTQD_NN_HD float silu(float x) { return x / (1.0f + expf(-x)); }

GPTQD_NN_HD float relu(float x) { return x > 0.0f ? x : 0.0f; }

// One rotary pair at angle (c, s) = (cos, sin): (x1, x2) -> (x1 c - x2 s, x2 c + x1 s).
GPTQD_NN_HD void rope_pair(float& x1, float& x2, float c, float s) {
  const float a = x1, b = x2;
  x1 = a * c - b * s;
  x2 = b * c + a * s;
}

// 1 / sqrt(mean square + eps) of a row whose sum of squares (accumulated in fp64 by both
// backends) is `sum_sq` over `cols` values; fp32 like transformers' RMSNorm.
GPTQD_NN_HD float rms_inverse(double sum_sq, long long cols, float eps) {
  const float mean_sq = static_cast<float>(sum_sq / static_cast<double>(cols));
  return 1.0f / sqrtf(mean_sq + eps);
}

}  // namespace gptqd
