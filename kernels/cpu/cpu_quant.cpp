// CpuBackend: the quantizer (parameter search, round to nearest) and the GPTQ
// column-block sweep. All three are independent per output row, so they run
// row-parallel; each row's arithmetic is the same whatever the thread count.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/cpu_parallel.h"
#include "kernels/quant_math.h"

namespace gptqd {
namespace {

// sum_c |fake_quant(w_c) - w_c|^norm: the power in fp32 as the reference's
// pow_ (and twice as fast as double pow, which dominates the search), the sum
// in double so the comparison between grid points does not depend on the
// summation order.
double clip_error(const float* w, int64_t cols, float scale, float zero, int maxq, float norm) {
  double err = 0;
  for (int64_t c = 0; c < cols; ++c) {
    const float d = std::fabs(fake_quant(w[c], scale, zero, maxq) - w[c]);
    if (d != 0.0f) err += std::pow(d, norm);
  }
  return err;
}

void quant_params_row(const float* w, int64_t cols, const QuantGrid& grid, float* scale_out,
                      float* zero_out) {
  const int maxq = max_code(grid.bits);
  float xmin = 0, xmax = 0;  // folded with 0 as the reference does
  for (int64_t c = 0; c < cols; ++c) {
    xmin = std::fmin(xmin, w[c]);
    xmax = std::fmax(xmax, w[c]);
  }
  fold_range(grid.sym, &xmin, &xmax);
  float scale, zero;
  quant_params_from_range(xmin, xmax, maxq, grid.sym, &scale, &zero);
  if (grid.mse_clip) {
    // The reference's grid search: shrink the range by p = 1 - i / grid
    // (shrunk_quant_params) and keep the first p with the smallest error.
    const float sym_zero = zero;
    double best = std::numeric_limits<double>::infinity();
    const int steps = static_cast<int>(grid.mse_maxshrink * grid.mse_grid);
    for (int i = 0; i < steps; ++i) {
      float scale1, zero1;
      shrunk_quant_params(xmin, xmax, i, grid.mse_grid, maxq, grid.sym, sym_zero, &scale1, &zero1);
      const double err = clip_error(w, cols, scale1, zero1, maxq, grid.mse_norm);
      if (err < best) {
        best = err;
        scale = scale1;
        zero = zero1;
      }
    }
  }
  *scale_out = scale;
  *zero_out = zero;
}

}  // namespace

void CpuBackend::quant_params(int64_t rows, int64_t cols, const float* w, int64_t ldw,
                              const QuantGrid& grid, float* scale, float* zero) {
  const int64_t cost = grid.mse_clip ? cols * grid.mse_grid * 8 : cols;
  cpu::parallel_for(rows, threads_, cost, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      quant_params_row(w + r * ldw, cols, grid, scale + r, zero + r);
  });
}

void CpuBackend::quantize_rtn(int64_t rows, int64_t cols, const float* w, int64_t ldw,
                              const float* scale, const float* zero, const int32_t* col_group,
                              int maxq, uint8_t* codes, int64_t ldc, float* qw, int64_t ldq) {
  cpu::parallel_for(rows, threads_, cols, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        const int64_t g = col_group[c];
        const float s = scale[g * rows + r];
        const float z = zero[g * rows + r];
        const float code = quant_code(w[r * ldw + c], s, z, maxq);
        if (codes) codes[r * ldc + c] = static_cast<uint8_t>(code);
        if (qw) qw[r * ldq + c] = dequant_code(code, s, z);
      }
    }
  });
}

namespace {

// Rows swept together: the sweep's dependence runs along the columns of a
// row, so one row alone is a chain of dependent divisions and roundings
// (latency-bound); kTileRows independent rows side by side make every step a
// vector operation over the rows. The tile (count x kTileRows floats, 8 KiB
// for a 128-column block) stays in L1.
constexpr int64_t kTileRows = 16;

// One column of a tile: kTileRows floats as one GCC/Clang vector, so the
// update loop below is one vector multiply and subtract per column whatever
// the instruction set (two AVX or four SSE registers). Written as a plain
// loop over k, compilers vectorize across columns instead, with strided
// gathers that run several times slower. The struct fixes the alignment: a
// vector type's own alignment depends on the instruction set the code is
// compiled for, and the two clones of sweep_tile must agree with the
// allocation.
typedef float TileVector __attribute__((vector_size(kTileRows * sizeof(float))));
struct alignas(kTileRows * sizeof(float)) TileColumn {
  TileVector v;
};

// The block for rows [r0, r0 + nr), nr <= kTileRows, exactly as GptqBlock
// specifies: every element sees the same operations in the same order as a
// row-at-a-time loop (the product err * hinv rounded before the subtraction,
// as the reference's outer product does; no fused multiply-add), so the result
// does not depend on the tiling, the thread count or the instruction set.
// `tile` holds `count` columns: W[r0 + k, i] is tile[i].v[k].
// Compiled twice (AVX2, and the baseline), picked at run time; contraction
// into FMA is off in both whatever the build flags.
__attribute__((target_clones("avx2", "default"), optimize("fp-contract=off"))) void sweep_tile(
    const GptqBlock& blk, int64_t r0, int64_t nr, TileColumn* tile) {
  const int64_t count = blk.count;
  float s[kTileRows], z[kTileRows], code[kTileRows], q[kTileRows];
  TileVector e;
  double loss[kTileRows] = {};
  // Padding lanes (k >= nr) quantize zeros with scale 1: finite and unused.
  for (int64_t i = 0; i < count; ++i)
    for (int64_t k = 0; k < kTileRows; ++k)
      tile[i].v[k] = k < nr ? blk.w[(r0 + k) * blk.ldw + i] : 0.0f;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t g = blk.col_group[i];
    for (int64_t k = 0; k < kTileRows; ++k) {
      s[k] = k < nr ? blk.scale[g * blk.rows + r0 + k] : 1.0f;
      z[k] = k < nr ? blk.zero[g * blk.rows + r0 + k] : 0.0f;
    }
    const float* hrow = blk.hinv + i * blk.ldh;
    const float d = hrow[i];
    const TileVector& wi = tile[i].v;
    for (int64_t k = 0; k < kTileRows; ++k) {
      code[k] = quant_code(wi[k], s[k], z[k], blk.maxq);
      q[k] = dequant_code(code[k], s[k], z[k]);
      const float diff = wi[k] - q[k];
      e[k] = diff / d;
      loss[k] += static_cast<double>(diff * diff / (d * d)) / 2.0;
    }
    for (int64_t k = 0; k < nr; ++k) {
      const int64_t r = r0 + k;
      blk.w[r * blk.ldw + i] = wi[k];
      blk.codes[r * blk.ldc + i] = static_cast<uint8_t>(code[k]);
      blk.qw[r * blk.ldq + i] = q[k];
      blk.err[r * blk.lde + i] = e[k];
    }
    for (int64_t j = i + 1; j < count; ++j) tile[j].v -= e * hrow[j];
  }
  for (int64_t k = 0; k < nr; ++k) blk.loss[r0 + k] += static_cast<float>(loss[k]);
}

}  // namespace

// The rows are independent: tiles of kTileRows rows run in parallel.
void CpuBackend::gptq_block(const GptqBlock& blk) {
  if (blk.rows <= 0 || blk.count <= 0) return;
  const int64_t tiles = (blk.rows + kTileRows - 1) / kTileRows;
  cpu::parallel_for(tiles, threads_, kTileRows * (blk.count * blk.count / 2 + 1),
                    [&](int64_t t0, int64_t t1) {
                      std::vector<TileColumn> tile(static_cast<size_t>(blk.count));
                      for (int64_t t = t0; t < t1; ++t)
                        sweep_tile(blk, t * kTileRows,
                                   std::min(kTileRows, blk.rows - t * kTileRows), tile.data());
                    });
}

}  // namespace gptqd
