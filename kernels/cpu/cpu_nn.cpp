// CpuBackend: the elementwise and per-row parts of the BLOOM forward.
#include <cmath>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/quant_math.h"

namespace gptqd {

// Two passes (mean, then the mean of squared deviations) rather than
// E[x^2] - E[x]^2, which cancels catastrophically for rows with a large mean.
// The sums accumulate in double; everything else is fp32 like torch's
// layer_norm: biased variance, eps inside the square root.
void CpuBackend::layer_norm(int64_t rows, int64_t cols, const float* x, const float* gamma,
                            const float* beta, float eps, float* y) {
  if (cols <= 0) return;
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
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
}

void CpuBackend::gelu(int64_t n, float* x) {
  for (int64_t i = 0; i < n; ++i) x[i] = gelu_bloom(x[i]);
}

void CpuBackend::add(int64_t n, const float* a, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] += a[i];
}

void CpuBackend::add_bias(int64_t rows, int64_t cols, const float* bias, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    float* yr = y + r * cols;
    for (int64_t c = 0; c < cols; ++c) yr[c] += bias[c];
  }
}

}  // namespace gptqd
