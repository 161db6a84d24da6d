// CudaBackend::quant_params: per row, the range (min/max folded with 0), the
// quantizer's scale and zero from kernels/quant_math.h, and optionally the
// mse_clip grid search, exactly as kernels/cpu/cpu_quant.cpp does it.
//
// One warp per row: a group is 128 columns (4 per lane) or a whole row, and a
// warp needs no block barriers. min/max are exact in any order, so the params
// without mse_clip are bit-identical to the CPU's. With mse_clip the error of
// each grid point is a sum in double (tree order here, column order on the
// CPU) of terms |q - w|^norm, each rounded to fp32; the power is taken in
// double and rounded once, which is the correctly rounded powf the CPU's libm
// gives to within its ~0.5 ulp (CUDA's own powf is within 2 ulp only). The
// chosen grid point can then differ from the CPU's only where two grid points'
// errors agree to ~1e-7 relative.
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_launch.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/quant_math.h"

namespace gptqd::cuda {
namespace {

constexpr int kRowsPerBlock = 4;  // warps per block

__device__ double clip_error_warp(const float* w, int64_t cols, float scale, float zero, int maxq,
                                  float norm, int lane) {
  double err = 0;
  for (int64_t c = lane; c < cols; c += kWarpSize) {
    const float d = fabsf(fake_quant(w[c], scale, zero, maxq) - w[c]);
    if (d != 0.0f)
      err += static_cast<float>(pow(static_cast<double>(d), static_cast<double>(norm)));
  }
  return warp_sum(err);
}

__global__ void quant_params_kernel(int64_t rows, int64_t cols, const float* w, int64_t ldw,
                                    QuantGrid grid, float* scale_out, float* zero_out) {
  const int lane = threadIdx.x % kWarpSize;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  if (row >= rows) return;  // whole warps leave; no block barrier follows
  const float* wr = w + row * ldw;
  const int maxq = max_code(grid.bits);

  float xmin = 0, xmax = 0;  // folded with 0 as the reference does
  for (int64_t c = lane; c < cols; c += kWarpSize) {
    xmin = fminf(xmin, wr[c]);
    xmax = fmaxf(xmax, wr[c]);
  }
  xmin = warp_min(xmin);
  xmax = warp_max(xmax);
  fold_range(grid.sym, &xmin, &xmax);
  float scale, zero;
  quant_params_from_range(xmin, xmax, maxq, grid.sym, &scale, &zero);

  if (grid.mse_clip) {
    // Every lane holds the same range and the same warp sums, so every lane
    // takes the same branch and ends with the same scale and zero.
    const float sym_zero = zero;
    double best = INFINITY;
    const int steps = static_cast<int>(grid.mse_maxshrink * grid.mse_grid);
    for (int i = 0; i < steps; ++i) {
      float scale1, zero1;
      shrunk_quant_params(xmin, xmax, i, grid.mse_grid, maxq, grid.sym, sym_zero, &scale1, &zero1);
      const double err = clip_error_warp(wr, cols, scale1, zero1, maxq, grid.mse_norm, lane);
      if (err < best) {
        best = err;
        scale = scale1;
        zero = zero1;
      }
    }
  }
  if (lane == 0) {
    scale_out[row] = scale;
    zero_out[row] = zero;
  }
}

}  // namespace

void launch_quant_params(int64_t rows, int64_t cols, const float* w, int64_t ldw,
                         const QuantGrid& grid, float* scale, float* zero, cudaStream_t stream) {
  if (rows <= 0) return;
  const int64_t blocks = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  GPTQD_CHECK(blocks <= 0x7fffffff, "quant_params of {} rows exceeds the grid", rows);
  quant_params_kernel<<<static_cast<unsigned>(blocks), kRowsPerBlock * kWarpSize, 0, stream>>>(
      rows, cols, w, ldw, grid, scale, zero);
  GPTQD_CUDA_LAUNCH_CHECK(quant_params_kernel);
}

void CudaBackend::quant_params(int64_t rows, int64_t cols, const float* w, int64_t ldw,
                               const QuantGrid& grid, float* scale, float* zero) {
  if (rows <= 0) return;
  activate();
  launch_quant_params(rows, cols, w, ldw, grid, scale, zero, stream());
}

}  // namespace gptqd::cuda
