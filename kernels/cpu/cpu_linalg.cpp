// CpuBackend: dense linear algebra through OpenBLAS (cblas) and LAPACKE.
#include <cblas.h>
#include <lapacke.h>

#include <vector>

#include "kernels/check.h"
#include "kernels/cpu/cpu_backend.h"

namespace gptqd {

void CpuBackend::gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                      const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                      float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    // op(A) op(B) is empty: C = beta * C. BLAS implementations disagree on
    // whether they touch C here, so do it explicitly (beta == 0 clears NaNs).
    for (int64_t r = 0; r < m; ++r)
      for (int64_t j = 0; j < n; ++j) c[r * ldc + j] = beta == 0.0f ? 0.0f : beta * c[r * ldc + j];
    return;
  }
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, static_cast<blasint>(m), static_cast<blasint>(n),
              static_cast<blasint>(k), alpha, a, static_cast<blasint>(lda), b,
              static_cast<blasint>(ldb), beta, c, static_cast<blasint>(ldc));
}

void CpuBackend::xtx(int64_t n, int64_t d, const float* x, float alpha, float beta, float* h) {
  if (d <= 0) return;
  if (n <= 0) {
    for (int64_t i = 0; i < d * d; ++i) h[i] = alpha == 0.0f ? 0.0f : alpha * h[i];
    return;
  }
  // ssyrk writes the upper triangle only (half the flops of sgemm); note that
  // BLAS names the scalars the other way round: C = alpha_blas A^T A + beta_blas C.
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, static_cast<blasint>(d),
              static_cast<blasint>(n), beta, x, static_cast<blasint>(d), alpha, h,
              static_cast<blasint>(d));
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < i; ++j) h[i * d + j] = h[j * d + i];
}

// The three factorizations run in float64. They cost O(n^3 / 3) each, which is
// small next to the GPTQ sweep's O(rows n^2) over all rows, and fp64 removes
// the factorization error that fp32 adds on ill-conditioned Hessians (where an
// fp32 Cholesky of H or of H^-1 can fail or lose most digits of U). The input
// and output stay fp32 as the reference's.
//
// The matrices are symmetric, so the row-major buffer read column-major is the
// same matrix; LAPACK runs column-major without LAPACKE's transposing copies.
// Column-major 'L' storage is row-major upper storage.
bool CpuBackend::inverse_cholesky_upper(int64_t n, float* h) {
  if (n <= 0) return true;
  const lapack_int ln = static_cast<lapack_int>(n);
  const size_t nn = static_cast<size_t>(n) * static_cast<size_t>(n);
  std::vector<double> a(nn);
  for (size_t i = 0; i < nn; ++i) a[i] = h[i];

  // H = L L^T (column-major lower).
  if (LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'L', ln, a.data(), ln) != 0) return false;
  // H^-1 from the factor, into the column-major lower triangle.
  if (LAPACKE_dpotri_work(LAPACK_COL_MAJOR, 'L', ln, a.data(), ln) != 0) return false;
  // H^-1 = M M^T with M column-major lower, i.e. H^-1 = U^T U for U = M^T, and
  // M stored column-major lower is U stored row-major upper.
  if (LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'L', ln, a.data(), ln) != 0) return false;

  for (int64_t r = 0; r < n; ++r) {
    float* row = h + r * n;
    for (int64_t c = 0; c < r; ++c) row[c] = 0.0f;
    // Row-major (r, c) with c >= r is column-major (c, r): a[r * n + c].
    for (int64_t c = r; c < n; ++c) row[c] = static_cast<float>(a[static_cast<size_t>(r * n + c)]);
  }
  return true;
}

}  // namespace gptqd
