// CpuBackend: the elementwise and per-row parts of the BLOOM forward, over rows or ranges of
// elements on the backend's threads (each element computed as on one thread).
#include <cmath>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/cpu_parallel.h"
#include "kernels/quant_math.h"

namespace gptqd {
namespace {

// Rough costs per element for cpu::parallel_for, in simple operations: a memory-bound add
// is 1, a normalization's three passes about 4, GELU's tanh about 20.
constexpr int64_t kAddCost = 1;
constexpr int64_t kNormCost = 4;
constexpr int64_t kGeluCost = 20;

// Two passes (mean, then the mean of squared deviations) rather than
// E[x^2] - E[x]^2, which cancels catastrophically for rows with a large mean.
// The sums accumulate in double; everything else is fp32 like torch's
// layer_norm: biased variance, eps inside the square root.
void layer_norm_row(const float* xr, int64_t cols, const float* gamma, const float* beta, float eps,
                    float* yr) {
  double sum = 0;
  for (int64_t c = 0; c < cols; ++c) sum += xr[c];
  const float mean = static_cast<float>(sum / cols);
  double sq = 0;
  for (int64_t c = 0; c < cols; ++c) {
    const float d = xr[c] - mean;
    sq += static_cast<double>(d) * d;
  }
  const float var = static_cast<float>(sq / cols);
  const float rstd = 1.0f / std::sqrt(var + eps);
  // y may alias x: each element is read before it is written.
  for (int64_t c = 0; c < cols; ++c) yr[c] = (xr[c] - mean) * rstd * gamma[c] + beta[c];
}

}  // namespace

void CpuBackend::layer_norm(int64_t rows, int64_t cols, const float* x, const float* gamma,
                            const float* beta, float eps, float* y) {
  if (cols <= 0) return;
  cpu::parallel_for(rows, threads_, kNormCost * cols, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      layer_norm_row(x + r * cols, cols, gamma, beta, eps, y + r * cols);
  });
}

void CpuBackend::gelu(int64_t n, float* x) {
  cpu::parallel_for(n, threads_, kGeluCost, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) x[i] = gelu_bloom(x[i]);
  });
}

void CpuBackend::add(int64_t n, const float* a, float* y) {
  cpu::parallel_for(n, threads_, kAddCost, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) y[i] += a[i];
  });
}

void CpuBackend::add_bias(int64_t rows, int64_t cols, const float* bias, float* y) {
  cpu::parallel_for(rows, threads_, kAddCost * cols, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* yr = y + r * cols;
      for (int64_t c = 0; c < cols; ++c) yr[c] += bias[c];
    }
  });
}

}  // namespace gptqd
