// ALiBi slopes (DESIGN.md §5), shared by the CPU and CUDA attention.
#pragma once

#include <cmath>

#include "kernels/half.h"

namespace gptqd {

// Slope of head `head` (0-based, head < n_head, n_head >= 1). With p the largest
// power of two <= n_head, head i = head + 1 (1-based) gets 2^(-8 i / p) for
// i <= p, and the remaining heads get 2^(-4 k / p) for odd k = 1, 3, 5, ...
//
// Computed as transformers' build_alibi_tensor does: the base 2^(-8/p) (or
// 2^(-4/p)) is rounded to fp32 first and then raised to the integer power. The
// power runs in double and is rounded once, so host and device agree and the
// result is what torch's fp32 pow gives (within an ulp of the exact 2^(-8i/p)).
GPTQD_HD float alibi_slope(int head, int n_head) {
  int p = 1;
  while (p * 2 <= n_head) p *= 2;
  if (head < p) {
    const float base = static_cast<float>(exp2(-8.0 / p));
    return static_cast<float>(pow(static_cast<double>(base), head + 1));
  }
  const float base = static_cast<float>(exp2(-4.0 / p));
  const int k = 2 * (head - p) + 1;
  return static_cast<float>(pow(static_cast<double>(base), k));
}

}  // namespace gptqd
