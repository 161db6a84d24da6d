// CpuBackend: the quantizer (parameter search, round to nearest) and the GPTQ
// column-block sweep. All three are independent per output row, so they run
// row-parallel; each row's arithmetic is the same whatever the thread count.
#include <algorithm>
#include <cmath>
#include <limits>

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

// Each row runs the whole block on its own: the sequential dependence of the
// sweep is along the columns of one row, and the row's block (count floats) is
// contiguous and stays in L1, with the rank-1 update a vectorisable inner loop.
void CpuBackend::gptq_block(const GptqBlock& blk) {
  const int64_t count = blk.count;
  cpu::parallel_for(blk.rows, threads_, count * count / 2 + 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* w = blk.w + r * blk.ldw;
      double loss = 0;
      for (int64_t i = 0; i < count; ++i) {
        const int64_t g = blk.col_group[i];
        const float s = blk.scale[g * blk.rows + r];
        const float z = blk.zero[g * blk.rows + r];
        const float* hrow = blk.hinv + i * blk.ldh;
        const float d = hrow[i];
        const float wi = w[i];
        const float code = quant_code(wi, s, z, blk.maxq);
        const float q = dequant_code(code, s, z);
        const float err = (wi - q) / d;
        for (int64_t j = i + 1; j < count; ++j) w[j] -= err * hrow[j];
        blk.codes[r * blk.ldc + i] = static_cast<uint8_t>(code);
        blk.qw[r * blk.ldq + i] = q;
        blk.err[r * blk.lde + i] = err;
        const float e = wi - q;
        loss += static_cast<double>(e * e / (d * d)) / 2.0;
      }
      blk.loss[r] += static_cast<float>(loss);
    }
  });
}

}  // namespace gptqd
