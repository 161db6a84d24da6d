// Plain double-precision references for the factorizations (tests only): no
// blocking, no BLAS, the textbook loops, so optimized code has something
// independent to be compared with.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

namespace gptqd::test {

// Lower Cholesky factor L of SPD `a` [n, n] (row-major), H = L L^T; upper part zeroed.
inline std::vector<double> naive_cholesky_lower(std::vector<double> a, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    double s = a[j * n + j];
    for (int64_t k = 0; k < j; ++k) s -= a[j * n + k] * a[j * n + k];
    a[j * n + j] = std::sqrt(s);
    for (int64_t i = j + 1; i < n; ++i) {
      double t = a[i * n + j];
      for (int64_t k = 0; k < j; ++k) t -= a[i * n + k] * a[j * n + k];
      a[i * n + j] = t / a[j * n + j];
    }
    for (int64_t k = j + 1; k < n; ++k) a[j * n + k] = 0;
  }
  return a;
}

// U (upper) with H^-1 = U^T U: invert H from its Cholesky factor column by column,
// then U = (lower Cholesky of H^-1)^T — the reference GPTQ's three steps.
inline std::vector<double> naive_inverse_cholesky_upper(const std::vector<double>& h, int64_t n) {
  const auto l = naive_cholesky_lower(h, n);
  std::vector<double> inv(n * n);
  for (int64_t col = 0; col < n; ++col) {
    std::vector<double> y(n), x(n);
    for (int64_t i = 0; i < n; ++i) {  // L y = e_col
      double s = i == col ? 1.0 : 0.0;
      for (int64_t k = 0; k < i; ++k) s -= l[i * n + k] * y[k];
      y[i] = s / l[i * n + i];
    }
    for (int64_t i = n - 1; i >= 0; --i) {  // L^T x = y
      double s = y[i];
      for (int64_t k = i + 1; k < n; ++k) s -= l[k * n + i] * x[k];
      x[i] = s / l[i * n + i];
    }
    for (int64_t i = 0; i < n; ++i) inv[i * n + col] = x[i];
  }
  const auto m = naive_cholesky_lower(inv, n);
  std::vector<double> u(n * n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) u[i * n + j] = m[j * n + i];
  return u;
}

}  // namespace gptqd::test
