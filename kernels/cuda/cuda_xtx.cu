// CudaBackend::xtx: H = alpha H + beta X^T X with cublasSsyrk (exact) or a bf16 tensor-core
// GEMM (fast), then the upper triangle mirrored onto the lower (the interface writes both).
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_launch.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace gptqd::cuda {
namespace {

// A square tile through shared memory so that both the read of the upper
// triangle and the write of the lower one are coalesced; +1 column against
// bank conflicts on the transposed read.
constexpr int kTile = 32;
constexpr int kTileRows = 8;  // blockDim (kTile, kTileRows): each thread moves kTile/kTileRows

// Block (bx, by) owns destination tile (row block by, column block bx) of the
// strictly lower triangle; it reads the mirrored tile (row block bx, column
// block by), which lies in the upper triangle (or is the diagonal tile, whose
// reads all happen before its writes).
__global__ void mirror_upper_to_lower_kernel(int64_t d, float* h) {
  __shared__ float tile[kTile][kTile + 1];
  const int64_t tile_r = blockIdx.y, tile_c = blockIdx.x;
  if (tile_c > tile_r) return;  // destination entirely above the diagonal
  for (int k = threadIdx.y; k < kTile; k += kTileRows) {
    const int64_t src_r = tile_c * kTile + k, src_c = tile_r * kTile + threadIdx.x;
    if (src_r < d && src_c < d) tile[k][threadIdx.x] = h[src_r * d + src_c];
  }
  __syncthreads();
  for (int k = threadIdx.y; k < kTile; k += kTileRows) {
    const int64_t r = tile_r * kTile + k, c = tile_c * kTile + threadIdx.x;
    // h[r, c] = h[c, r]; (c, r) is tile element [c - tile_c*kTile][r - tile_r*kTile].
    if (r < d && c < r) h[r * d + c] = tile[threadIdx.x][k];
  }
}

}  // namespace

void launch_mirror_upper_to_lower(int64_t d, float* h, cudaStream_t stream) {
  if (d <= 1) return;
  const int64_t tiles = (d + kTile - 1) / kTile;
  GPTQD_CHECK(tiles <= 65535, "mirror of a {}x{} matrix exceeds the grid", d, d);
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(tiles));
  mirror_upper_to_lower_kernel<<<grid, dim3(kTile, kTileRows), 0, stream>>>(d, h);
  GPTQD_CUDA_LAUNCH_CHECK(mirror_upper_to_lower_kernel);
}

void CudaBackend::xtx(int64_t n, int64_t d, const float* x, float alpha, float beta, float* h) {
  if (d <= 0) return;
  activate();
  if (n <= 0) {
    launch_scale_2d(d, d, h, d, alpha, stream());
    return;
  }
  // X row-major [n, d] read column-major is X^T (d x n, ld d), so syrk with
  // "N" computes (X^T)(X^T)^T = X^T X. Column-major LOWER element (i, j),
  // i >= j, is h[i + j*d] = row-major (j, i): the row-major UPPER triangle,
  // the one the CPU twin's ssyrk(RowMajor, Upper) writes. BLAS names the
  // scalars the other way round: C = alpha_blas A A^T + beta_blas C.
  if (precision_ == Precision::kFast) {
    // cuBLAS has no SYRK on bf16 inputs: a full GEMM (twice SYRK's products, on tensor cores
    // that run them about 15 times faster than fp32) of bf16(X)^T bf16(X), then the upper
    // triangle mirrored as below, so that H is exactly symmetric whatever order the GEMM
    // summed the two triangles in. Row-major C = op(A) op(B) with A = B = X (ld d), op(A) = T.
    DeviceArray<uint16_t> x16(n * d, stream());
    launch_to_bf16_2d(n, d, x, d, x16.get(), stream());
    gemm_rowmajor_bf16(cublas_.get(), true, false, d, d, n, beta, x16.get(), d, x16.get(), d, alpha,
                       h, d);
  } else {
    GPTQD_CUBLAS_CHECK(cublasSsyrk_64(cublas_.get(), CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, d, n,
                                      &beta, x, d, &alpha, h, d));
  }
  launch_mirror_upper_to_lower(d, h, stream());
}

}  // namespace gptqd::cuda
