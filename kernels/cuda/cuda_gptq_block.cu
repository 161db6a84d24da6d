// CudaBackend::gptq_block: the fused GPTQ column-block sweep (GptqBlock in
// kernels/backend.h), one launch per block of columns.
//
// Within a block the error feedback runs along the columns of ONE row: column
// i's code depends on the updates from columns < i of the same row, never on
// other rows. So each warp owns a row and runs the whole count-column sweep
// for it, alone:
//   - the row's count weights live in shared memory (a tile per warp), the
//     count x count piece of the upper factor (hinv) once per thread block in
//     shared memory too when it fits (count = 128: 64 KB, opted in beyond the
//     default 48 KB), else it is read through the caches;
//   - at step i every lane reads w[i] and computes the code, q and err (the
//     same numbers in every lane, no shuffle needed), then the lanes update
//     the columns j > i, 32 apart, and __syncwarp() publishes them for step
//     i + 1. No block-wide barrier inside the sweep, no per-column launch.
// The update of the columns after the block is the caller's GEMM.
//
// Arithmetic: per element exactly the CPU twin's sequence (kernels/cpu/
// cpu_quant.cpp): w_j = fl(w_j - fl(err * h_ij)) for i = 0, 1, ... in order,
// with the quantizer of kernels/quant_math.h and the loss summed in double in
// column order. The update is written with __fmul_rn/__fsub_rn so it can never
// become an FMA (the CPU build, x86-64 baseline, has none): given the same W,
// hinv, scale and zero the codes, q, err, W and loss are bit-identical.
#include <algorithm>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_launch.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/quant_math.h"

namespace gptqd::cuda {
namespace {

// Rows (warps) per thread block: 16 x 32 threads. With count = 128 a block
// takes 64 KB (hinv) + 8 KB (rows) of shared memory, so 3 blocks (48 warps)
// fit an H100 SM and 2 (32 warps) an A100 SM: enough warps to hide the
// latency of each step's dependent chain (load, divide, round, update).
constexpr int kRowsPerBlock = 16;

template <bool kHinvShared>
__global__ void __launch_bounds__(kRowsPerBlock* kWarpSize) gptq_block_kernel(GptqBlock blk) {
  extern __shared__ float smem[];
  const int64_t count = blk.count;
  const int warps = blockDim.x / kWarpSize;
  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  float* hinv_s = smem;
  float* tile = smem + (kHinvShared ? count * count : 0) + warp * count;

  if (kHinvShared) {
    for (int64_t k = threadIdx.x; k < count * count; k += blockDim.x)
      hinv_s[k] = blk.hinv[(k / count) * blk.ldh + k % count];
    __syncthreads();  // the only block barrier; warps below work alone
  }
  const int64_t row = static_cast<int64_t>(blockIdx.x) * warps + warp;
  if (row >= blk.rows) return;

  float* w = blk.w + row * blk.ldw;
  for (int64_t j = lane; j < count; j += kWarpSize) tile[j] = w[j];
  __syncwarp();

  double loss = 0;  // lane 0's, in column order as on the CPU
  for (int64_t i = 0; i < count; ++i) {
    const int64_t g = blk.col_group[i];
    const float s = blk.scale[g * blk.rows + row];
    const float z = blk.zero[g * blk.rows + row];
    const float* hrow = kHinvShared ? hinv_s + i * count : blk.hinv + i * blk.ldh;
    const float d = hrow[i];
    const float wi = tile[i];
    const float code = quant_code(wi, s, z, blk.maxq);
    const float q = dequant_code(code, s, z);
    const float err = (wi - q) / d;
    for (int64_t j = i + 1 + lane; j < count; j += kWarpSize)
      tile[j] = __fsub_rn(tile[j], __fmul_rn(err, hrow[j]));
    if (lane == i % kWarpSize) {  // spread the scattered stores over the lanes
      blk.codes[row * blk.ldc + i] = static_cast<uint8_t>(code);
      blk.qw[row * blk.ldq + i] = q;
      blk.err[row * blk.lde + i] = err;
    }
    if (lane == 0) {
      const float e = wi - q;
      loss += static_cast<double>(e * e / (d * d)) / 2.0;
    }
    __syncwarp();  // step i's updates visible to every lane at step i + 1
  }
  // Column j was last updated at step j - 1: the tile is the CPU's final W.
  for (int64_t j = lane; j < count; j += kWarpSize) w[j] = tile[j];
  if (lane == 0) blk.loss[row] += static_cast<float>(loss);
}

template <bool kHinvShared>
void launch(const GptqBlock& blk, int rows_per_block, size_t smem, cudaStream_t stream) {
  if (smem > 48 * 1024)
    GPTQD_CUDA_CHECK(cudaFuncSetAttribute(gptq_block_kernel<kHinvShared>,
                                          cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          static_cast<int>(smem)));
  const int64_t blocks = (blk.rows + rows_per_block - 1) / rows_per_block;
  GPTQD_CHECK(blocks <= 0x7fffffff, "gptq_block of {} rows exceeds the grid", blk.rows);
  gptq_block_kernel<kHinvShared>
      <<<static_cast<unsigned>(blocks), rows_per_block * kWarpSize, smem, stream>>>(blk);
  GPTQD_CUDA_LAUNCH_CHECK(gptq_block_kernel);
}

}  // namespace

void launch_gptq_block(const GptqBlock& blk, int max_shared_bytes, cudaStream_t stream) {
  if (blk.rows <= 0 || blk.count <= 0) return;
  const size_t max_shared = static_cast<size_t>(max_shared_bytes);
  const size_t row_bytes = static_cast<size_t>(blk.count) * sizeof(float);
  const size_t hinv_bytes = row_bytes * static_cast<size_t>(blk.count);
  if (hinv_bytes + kRowsPerBlock * row_bytes <= max_shared) {
    launch<true>(blk, kRowsPerBlock, hinv_bytes + kRowsPerBlock * row_bytes, stream);
    return;
  }
  // A block wider than ~190 (A100) / ~230 (H100) columns: hinv through the
  // caches, the rows still in shared memory, fewer rows per block if need be.
  const int rows_per_block =
      static_cast<int>(std::min<size_t>(kRowsPerBlock, max_shared / row_bytes));
  GPTQD_CHECK(rows_per_block >= 1,
              "GPTQ block of {} columns does not fit in {} bytes of shared memory; use a "
              "block_size of at most {}",
              blk.count, max_shared, max_shared / sizeof(float));
  launch<false>(blk, rows_per_block, rows_per_block * row_bytes, stream);
}

void CudaBackend::gptq_block(const GptqBlock& blk) {
  if (blk.rows <= 0 || blk.count <= 0) return;
  activate();
  // col_group is host memory (backend.h): a device copy for this launch.
  const DeviceArray<int32_t> groups = upload_array(blk.col_group, blk.count);
  GptqBlock dev = blk;
  dev.col_group = groups.get();
  launch_gptq_block(dev, max_shared_optin_, stream());
}

}  // namespace gptqd::cuda
