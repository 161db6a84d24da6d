// CpuBackend: dense linear algebra through OpenBLAS (cblas) and LAPACKE.
#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <vector>

#include "base/check.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/cpu_blas.h"
#include "kernels/cpu/cpu_memory.h"
#include "kernels/cpu/cpu_parallel.h"
#include "kernels/cpu/cpu_tiles.h"
#include "kernels/half.h"

namespace gptqd {
namespace {

// One single-threaded BLAS call (CpuBackend keeps OpenBLAS at one thread outside the
// factorizations), k <= 0 included: op(A) op(B) is then empty and C = beta * C. BLAS
// implementations disagree on whether they touch C there, so it is done explicitly (beta == 0
// clears NaNs).
void blas_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
               const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
               int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    for (int64_t r = 0; r < m; ++r)
      for (int64_t j = 0; j < n; ++j) c[r * ldc + j] = beta == 0.0f ? 0.0f : beta * c[r * ldc + j];
    return;
  }
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, static_cast<blasint>(m), static_cast<blasint>(n),
              static_cast<blasint>(k), alpha, a, static_cast<blasint>(lda), b,
              static_cast<blasint>(ldb), beta, c, static_cast<blasint>(ldc));
}

}  // namespace

namespace cpu {
namespace {

// Tiles stay large: a BLAS call packs the tile's rows of A and columns of B, a cost in
// 1 / extent per multiply-add. Measured at one thread on this project's shapes (OpenBLAS 0.3.21,
// 128..512 tokens by 256..1728 outputs): 64 x 64 tiles cost 8-15% over one call, 128 x 128
// 2-8%, 256 x 256 0-5%; at SmolLM2's (512 tokens x 576 -> 576, 192, 1536; 1536 -> 576) 128 x 144
// tiles ran 118-120 GFLOP/s against 151-153 for one call, 256 x 288 tiles 140. So a product
// splits only
//   - into tiles of at least kMinTileExtent along the dimension split and kMinTileWork
//     multiply-adds (thread start-up is tens of microseconds),
//   - until there are kTargetTiles (an even share for 1, 2 or 4 threads; taken as threads finish
//     them, so unequal speeds even out), further only while a tile keeps kLargeTileWork (a large
//     product feeds many threads with tiles whose packing costs little),
//   - and never beyond kMaxTiles.
// kTileAlign: extents in multiples of the BLAS kernels' register blocks.
constexpr int64_t kMinTileExtent = 128;
constexpr int64_t kMinTileWork = int64_t{1} << 21;
constexpr int64_t kTargetTiles = 4;
constexpr int64_t kLargeTileWork = int64_t{1} << 26;
constexpr int64_t kMaxTiles = 1024;
constexpr int64_t kTileAlign = 16;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// `len` in `parts` tiles: the extent of each but the last.
int64_t tile_extent(int64_t len, int64_t parts) {
  return std::min(len, ceil_div(ceil_div(len, parts), kTileAlign) * kTileAlign);
}

// Whether tiles of `extent` along the dimension split, `work` multiply-adds each, `count` of them,
// are still worth it after a split from `before` tiles.
bool worth_splitting(int64_t extent, int64_t work, int64_t before, int64_t count) {
  return extent >= kMinTileExtent && work >= kMinTileWork && count <= kMaxTiles && count > before &&
         (before < kTargetTiles || work >= kLargeTileWork);
}

}  // namespace

// Halves the longer extent (the columns on a tie) while worth_splitting.
GemmTiles gemm_tiles(int64_t m, int64_t n, int64_t k) {
  k = std::max<int64_t>(k, 1);
  int64_t pm = 1, pn = 1;
  for (;;) {
    const int64_t tm = tile_extent(m, pm), tn = tile_extent(n, pn);
    const bool split_cols = tn >= tm;
    const int64_t next_m = split_cols ? tm : tile_extent(m, 2 * pm);
    const int64_t next_n = split_cols ? tile_extent(n, 2 * pn) : tn;
    if (!worth_splitting(split_cols ? next_n : next_m, next_m * next_n * k,
                         ceil_div(m, tm) * ceil_div(n, tn),
                         ceil_div(m, next_m) * ceil_div(n, next_n)))
      break;
    (split_cols ? pn : pm) *= 2;
  }
  const int64_t tm = tile_extent(m, pm), tn = tile_extent(n, pn);
  return {tm, tn, ceil_div(m, tm), ceil_div(n, tn)};
}

// The number of parts along d grows 1, 2, 3, 4, 6, 8, 12, ... while worth_splitting, counting
// the upper triangle's tiles: 3 parts (6 tiles) keep 192-wide tiles for SmolLM2's 576 inputs,
// where halving alone jumped from 288 to 144 (144-wide tiles ran 107-125 GFLOP/s against
// 125-128 at one thread, 183-216 against 228-230 at two).
int64_t xtx_tile(int64_t d, int64_t n) {
  n = std::max<int64_t>(n, 1);
  auto upper = [&](int64_t t) {
    const int64_t c = ceil_div(d, t);
    return c * (c + 1) / 2;
  };
  auto more = [](int64_t p) { return p == 1 ? 2 : (p & (p - 1)) == 0 ? p + p / 2 : p / 3 * 4; };
  int64_t parts = 1;
  for (;;) {
    const int64_t t = tile_extent(d, parts), next = tile_extent(d, more(parts));
    if (!worth_splitting(next, next * next * n, upper(t), upper(next))) break;
    parts = more(parts);
  }
  return tile_extent(d, parts);
}

}  // namespace cpu

void CpuBackend::gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                      const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                      float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    blas_gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);  // C = beta C
    return;
  }
  const cpu::GemmTiles t = cpu::gemm_tiles(m, n, k);
  const int64_t tiles = t.count_m * t.count_n;
  const int workers = cpu::parallel_parts(tiles, threads_, t.rows * t.cols * k);
  cpu::parallel_tasks(tiles, workers, [&](int, int64_t tile) {
    const int64_t i0 = (tile / t.count_n) * t.rows, j0 = (tile % t.count_n) * t.cols;
    const int64_t mi = std::min(t.rows, m - i0), nj = std::min(t.cols, n - j0);
    // op(A) rows i0.. are A's rows (columns when A is transposed); op(B) columns j0.. are B's
    // columns (rows when B is transposed).
    const float* ai = trans_a ? a + i0 : a + i0 * lda;
    const float* bj = trans_b ? b + j0 * ldb : b + j0;
    blas_gemm(trans_a, trans_b, mi, nj, k, alpha, ai, lda, bj, ldb, beta, c + i0 * ldc + j0, ldc);
  });
}

namespace {

// dst[r*cols + c] = round_to_bf16(src[r*lds + c]): the rows x cols operand of a kFast op,
// packed. The BLAS then multiplies bf16 values held in fp32: the product of two bf16 (8-bit
// significands) is exact in fp32, so the only roundings left are the fp32 sums, as on a
// tensor core with fp32 accumulation.
void round_to_bf16_2d(int64_t rows, int64_t cols, const float* src, int64_t lds, float* dst,
                      int threads) {
  cpu::parallel_for(rows, threads, cols, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t c = 0; c < cols; ++c) dst[r * cols + c] = round_to_bf16(src[r * lds + c]);
  });
}

}  // namespace

void CpuBackend::fast_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                           const float* a, int64_t lda, const PackB& pack_b, float beta, float* c,
                           int64_t ldc) {
  // A as stored is (trans_a ? k x m : m x k), B (trans_b ? n x k : k x n).
  const int64_t a_rows = trans_a ? k : m, a_cols = trans_a ? m : k;
  const int64_t b_rows = trans_b ? n : k, b_cols = trans_b ? k : n;
  CountedScratch a_mem(*this, a_rows * a_cols * static_cast<int64_t>(sizeof(float)));
  CountedScratch b_mem(*this, b_rows * b_cols * static_cast<int64_t>(sizeof(float)));
  round_to_bf16_2d(a_rows, a_cols, a, lda, a_mem.as<float>(), threads_);
  float* packed = b_mem.as<float>();
  cpu::parallel_for(b_rows, threads_, b_cols, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) pack_b(r, packed + r * b_cols, b_cols);
  });
  gemm(trans_a, trans_b, m, n, k, alpha, a_mem.as<float>(), a_cols, packed, b_cols, beta, c, ldc);
}

void CpuBackend::forward_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                              float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
                              float beta, float* c, int64_t ldc) {
  if (precision_ == Precision::kExact || m <= 0 || n <= 0 || k <= 0) {
    gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  fast_gemm(
      trans_a, trans_b, m, n, k, alpha, a, lda,
      [&](int64_t r, float* dst, int64_t cols) {
        for (int64_t j = 0; j < cols; ++j) dst[j] = round_to_bf16(b[r * ldb + j]);
      },
      beta, c, ldc);
}

void CpuBackend::to_bf16(int64_t count, const float* src, uint16_t* dst) {
  cpu::parallel_for(count, threads_, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) dst[i] = f32_to_bf16(src[i]);
  });
}

void CpuBackend::forward_gemm_bf16_b(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                                     float alpha, const float* a, int64_t lda, const uint16_t* b,
                                     int64_t ldb, float beta, float* c, int64_t ldc) {
  GPTQD_CHECK(precision_ == Precision::kFast, "forward_gemm_bf16_b in precision {}",
              precision_name(precision_));
  if (m <= 0 || n <= 0 || k <= 0) {
    gemm(trans_a, trans_b, m, n, k, alpha, a, lda, nullptr, ldb, beta, c, ldc);  // C = beta C
    return;
  }
  // B's bf16 values widened (exactly) to fp32: the same operand forward_gemm rounds.
  fast_gemm(
      trans_a, trans_b, m, n, k, alpha, a, lda,
      [&](int64_t r, float* dst, int64_t cols) {
        for (int64_t j = 0; j < cols; ++j) dst[j] = bf16_to_f32(b[r * ldb + j]);
      },
      beta, c, ldc);
}

void CpuBackend::xtx(int64_t n, int64_t d, const float* x, float alpha, float beta, float* h) {
  if (d <= 0) return;
  if (n <= 0) {
    for (int64_t i = 0; i < d * d; ++i) h[i] = alpha == 0.0f ? 0.0f : alpha * h[i];
    return;
  }
  std::unique_ptr<CountedScratch> rounded;
  if (precision_ == Precision::kFast) {
    rounded = std::make_unique<CountedScratch>(*this, n * d * static_cast<int64_t>(sizeof(float)));
    round_to_bf16_2d(n, d, x, d, rounded->as<float>(), threads_);
    x = rounded->as<float>();
  }
  // The upper triangle by square tiles, each one BLAS call on its own threads: SSYRK on the
  // diagonal (its upper part, half the work of SGEMM), SGEMM above it. BLAS names the scalars
  // the other way round: C = alpha_blas op(A) op(B) + beta_blas C.
  const int64_t ts = cpu::xtx_tile(d, n), tc = (d + ts - 1) / ts;
  std::vector<std::pair<int64_t, int64_t>> tiles;  // (tile row, tile column), column >= row
  for (int64_t ti = 0; ti < tc; ++ti)
    for (int64_t tj = ti; tj < tc; ++tj) tiles.emplace_back(ti, tj);
  const int64_t count = static_cast<int64_t>(tiles.size());
  cpu::parallel_tasks(
      count, cpu::parallel_parts(count, threads_, ts * ts * n), [&](int, int64_t t) {
        const int64_t i0 = tiles[t].first * ts, j0 = tiles[t].second * ts;
        const int64_t di = std::min(ts, d - i0), dj = std::min(ts, d - j0);
        float* hij = h + i0 * d + j0;
        if (i0 == j0) {
          cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, static_cast<blasint>(di),
                      static_cast<blasint>(n), beta, x + i0, static_cast<blasint>(d), alpha, hij,
                      static_cast<blasint>(d));
        } else {
          blas_gemm(true, false, di, dj, n, beta, x + i0, d, x + j0, d, alpha, hij, d);
        }
      });
  // Mirror into the lower triangle by square tiles, so that both the rows
  // read and the rows written stay in cache (a plain column walk misses on
  // every element once d is a few thousand).
  constexpr int64_t kTile = 64;
  cpu::parallel_for((d + kTile - 1) / kTile, threads_, kTile * d, [&](int64_t t0, int64_t t1) {
    for (int64_t ti = t0; ti < t1; ++ti) {
      const int64_t i0 = ti * kTile, i1 = std::min(d, i0 + kTile);
      for (int64_t j0 = 0; j0 < i1; j0 += kTile) {
        const int64_t j1 = std::min(d, j0 + kTile);
        for (int64_t i = i0; i < i1; ++i)
          for (int64_t j = j0; j < std::min(j1, i); ++j) h[i * d + j] = h[j * d + i];
      }
    }
  });
}

// U with H^-1 = U^T U, from ONE Cholesky factorization and one triangular
// inverse (2/3 n^3 flops) instead of the reference's three factorizations
// (Cholesky of H, the inverse from it, Cholesky of the inverse: 4/3 n^3).
// With J the exchange matrix (J x reverses x): the upper Cholesky factor R of
// J H J = R^T R gives H = V V^T with V = J R^T J upper, so
// H^-1 = (V^-1)^T V^-1 and U = V^-1 = J R^-T J: upper with a positive
// diagonal, the unique upper Cholesky factor of H^-1, i.e. the reference's U.
// It never forms H^-1, whose Cholesky squares the condition number that the
// reference's last step sees.
//
// Precision: the Cholesky runs in float64, the triangular inverse in float32.
// The Cholesky's forward error grows with cond(H) (up to ~100 n after the
// 1% damping: fp32 loses most digits of R there, and can fail outright), the
// inverse's only with cond(R) = sqrt(cond(H)). Measured on a 4096 x 4096
// layer: fp64 Cholesky + fp32 inverse gives the same codes as all-fp64 and
// differs from the reference with an fp64 factorization on 0.04% of them; an
// all-fp32 version differs on 0.6%, as the fp32 reference itself does
// (docs/numerics.md). The fp64 Cholesky costs n^3/3 at the fp64 rate (half
// the fp32 one on AVX2): at real calibration sizes (262,144 tokens) its extra
// cost over fp32 is n / (3 tokens) of the Hessian's, 0.5% to 7% for BLOOM.
//
// Storage, all sequential passes: H is symmetric, so the row-major buffer
// reversed (element k -> n^2 - 1 - k) is J H J in column-major order, which
// LAPACK factors in place. Row-major U[r][c] = R^-1(n-1-c, n-1-r), the
// column-major element at flat index n^2 - 1 - (r n + c): the way back is the
// same reversal.
bool CpuBackend::inverse_cholesky_upper(int64_t n, float* h) {
  if (n <= 0) return true;
  const lapack_int ln = static_cast<lapack_int>(n);
  const int64_t nn = n * n;
  // The two LAPACK calls are not split into tiles here: from order kThreadedFactorOrder on they
  // run on the BLAS's own threads, below on one (see the constant).
  cpu::BlasThreadsScope blas_threads(n >= cpu::kThreadedFactorOrder ? threads_ : 1);
  {
    // J H J = R^T R (column-major upper) in float64; R back to h.
    CountedScratch a_mem(*this, nn * static_cast<int64_t>(sizeof(double)));
    double* a = a_mem.as<double>();
    cpu::parallel_for(n, threads_, n, [&](int64_t r0, int64_t r1) {
      for (int64_t k = r0 * n; k < r1 * n; ++k) a[k] = h[nn - 1 - k];
    });
    if (LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'U', ln, a, ln) != 0) return false;
    cpu::parallel_for(n, threads_, n, [&](int64_t r0, int64_t r1) {
      for (int64_t k = r0 * n; k < r1 * n; ++k) h[k] = static_cast<float>(a[k]);
    });
  }
  // R^-1 in place; its other triangle is stale input.
  if (LAPACKE_strtri_work(LAPACK_COL_MAJOR, 'U', 'N', ln, h, ln) != 0) return false;
  // Reverse in place: element k < n^2 / 2 swaps with n^2 - 1 - k, the range of
  // k split in n equal parts for the threads. Then zero the strictly lower
  // triangle of the row-major result.
  cpu::parallel_for(n, threads_, n / 2 + 1, [&](int64_t r0, int64_t r1) {
    for (int64_t k = r0 * n / 2; k < r1 * n / 2; ++k) std::swap(h[k], h[nn - 1 - k]);
  });
  cpu::parallel_for(n, threads_, n / 2 + 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) std::fill(h + r * n, h + r * n + r, 0.0f);
  });
  return true;
}

}  // namespace gptqd
