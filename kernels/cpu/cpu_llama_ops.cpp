// CpuBackend: the per-row and elementwise parts of the Llama and OPT forwards.
#include "kernels/cpu/cpu_backend.h"
#include "kernels/nn_math.h"

namespace gptqd {

// The sum of squares accumulates in double (as layer_norm's sums do); the rest is fp32 like
// transformers' LlamaRMSNorm: x * rsqrt(mean(x^2) + eps), then times the weight.
void CpuBackend::rms_norm(int64_t rows, int64_t cols, const float* x, const float* gamma,
                          float eps, float* y) {
  if (cols <= 0) return;
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    double sq = 0;
    for (int64_t c = 0; c < cols; ++c) sq += static_cast<double>(xr[c]) * xr[c];
    const float inv = rms_inverse(sq, cols, eps);
    for (int64_t c = 0; c < cols; ++c) yr[c] = gamma[c] * (xr[c] * inv);
  }
}

void CpuBackend::rope(int64_t tokens, int64_t seq, int64_t n_heads, int64_t head_dim, float* x,
                      const float* cos, const float* sin) {
  if (seq <= 0 || head_dim < 2) return;
  const int64_t half = head_dim / 2;
  for (int64_t t = 0; t < tokens; ++t) {
    const int64_t p = t % seq;
    const float* c = cos + p * half;
    const float* s = sin + p * half;
    float* row = x + t * n_heads * head_dim;
    for (int64_t h = 0; h < n_heads; ++h) {
      float* xh = row + h * head_dim;
      for (int64_t i = 0; i < half; ++i) rope_pair(xh[i], xh[i + half], c[i], s[i]);
    }
  }
}

void CpuBackend::silu_mul(int64_t n, float* gate, const float* up) {
  for (int64_t i = 0; i < n; ++i) gate[i] = silu(gate[i]) * up[i];
}

void CpuBackend::relu(int64_t n, float* x) {
  for (int64_t i = 0; i < n; ++i) x[i] = gptqd::relu(x[i]);
}

}  // namespace gptqd
