// The fast precision's pieces (kernels/backend.h Precision::kFast): fp32 operands rounded to
// bf16 on the device, and the row-major GEMM on bf16 operands with fp32 accumulation that
// CudaBackend::forward_gemm and ::xtx run on the tensor cores.
//
// The rounding is kernels/half.h's f32_to_bf16 (round to nearest even), the function the CPU
// twin rounds with, so both backends multiply the same bf16 values; a product of two bf16 is
// exact in fp32, and the two differ only in the order of the fp32 sums.
#include "base/check.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_launch.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/half.h"

namespace gptqd::cuda {
namespace {

__global__ void to_bf16_2d_kernel(int64_t rows, int64_t cols, const float* src, int64_t lds,
                                  uint16_t* dst) {
  const int64_t n = rows * cols;
  for (int64_t i = grid_start(); i < n; i += grid_stride())
    dst[i] = f32_to_bf16(src[(i / cols) * lds + i % cols]);
}

cublasOperation_t op_of(bool trans) { return trans ? CUBLAS_OP_T : CUBLAS_OP_N; }

}  // namespace

void launch_to_bf16_2d(int64_t rows, int64_t cols, const float* src, int64_t lds, uint16_t* dst,
                       cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return;
  to_bf16_2d_kernel<<<grid_for(rows * cols), kThreads, 0, stream>>>(rows, cols, src, lds, dst);
  GPTQD_CUDA_LAUNCH_CHECK(to_bf16_2d_kernel);
}

// The operand swap of gemm_rowmajor (cuda_gemm.cu explains it). CUBLAS_COMPUTE_32F with bf16
// inputs: fp32 accumulation on the tensor cores (the handle's CUBLAS_DEFAULT_MATH allows them
// for 16-bit inputs; it only keeps TF32 off for fp32 inputs).
void gemm_rowmajor_bf16(cublasHandle_t handle, bool trans_a, bool trans_b, int64_t m, int64_t n,
                        int64_t k, float alpha, const uint16_t* a, int64_t lda, const uint16_t* b,
                        int64_t ldb, float beta, float* c, int64_t ldc) {
  GPTQD_CHECK(m >= 1 && n >= 1 && k >= 1, "gemm_rowmajor_bf16 of {}x{}x{}", m, n, k);
  GPTQD_CUBLAS_CHECK(cublasGemmEx_64(handle, op_of(trans_b), op_of(trans_a), n, m, k, &alpha, b,
                                     CUDA_R_16BF, ldb, a, CUDA_R_16BF, lda, &beta, c, CUDA_R_32F,
                                     ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

}  // namespace gptqd::cuda
