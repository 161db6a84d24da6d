// CpuBackend: the per-row and elementwise parts of the Llama and OPT forwards, over rows or
// ranges of elements on the backend's threads (each element computed as on one thread).
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/cpu_parallel.h"
#include "kernels/nn_math.h"

namespace gptqd {
namespace {

// Rough costs per element for cpu::parallel_for (as in cpu_nn.cpp): RMSNorm's two passes 3,
// a rotation 4, SiLU's exponential 20, ReLU 1.
constexpr int64_t kRmsCost = 3;
constexpr int64_t kRopeCost = 4;
constexpr int64_t kSiluCost = 20;
constexpr int64_t kReluCost = 1;

}  // namespace

// The sum of squares accumulates in double (as layer_norm's sums do); the rest is fp32 like
// transformers' LlamaRMSNorm: x * rsqrt(mean(x^2) + eps), then times the weight.
void CpuBackend::rms_norm(int64_t rows, int64_t cols, const float* x, const float* gamma, float eps,
                          float* y) {
  if (cols <= 0) return;
  cpu::parallel_for(rows, threads_, kRmsCost * cols, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * cols;
      float* yr = y + r * cols;
      double sq = 0;
      for (int64_t c = 0; c < cols; ++c) sq += static_cast<double>(xr[c]) * xr[c];
      const float inv = rms_inverse(sq, cols, eps);
      for (int64_t c = 0; c < cols; ++c) yr[c] = gamma[c] * (xr[c] * inv);
    }
  });
}

void CpuBackend::rope(int64_t tokens, int64_t seq, int64_t n_heads, int64_t head_dim, float* x,
                      const float* cos, const float* sin) {
  if (seq <= 0 || head_dim < 2) return;
  const int64_t half = head_dim / 2;
  cpu::parallel_for(tokens, threads_, kRopeCost * n_heads * head_dim, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t p = t % seq;
      const float* c = cos + p * half;
      const float* s = sin + p * half;
      float* row = x + t * n_heads * head_dim;
      for (int64_t h = 0; h < n_heads; ++h) {
        float* xh = row + h * head_dim;
        for (int64_t i = 0; i < half; ++i) rope_pair(xh[i], xh[i + half], c[i], s[i]);
      }
    }
  });
}

void CpuBackend::silu_mul(int64_t n, float* gate, const float* up) {
  cpu::parallel_for(n, threads_, kSiluCost, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) gate[i] = silu(gate[i]) * up[i];
  });
}

void CpuBackend::relu(int64_t n, float* x) {
  cpu::parallel_for(n, threads_, kReluCost, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) x[i] = gptqd::relu(x[i]);
  });
}

}  // namespace gptqd
