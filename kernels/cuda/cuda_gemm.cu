// CudaBackend::gemm on cuBLAS, forward_gemm (bf16 operands in the fast precision), and the
// row-major (strided batched) GEMM that
// the attention reuses.
//
// cuBLAS is column-major. A row-major matrix X with leading dimension ld, read
// column-major with the same ld, is X^T. So the row-major product
//   C = op(A) op(B)        (m x n)
// is, read column-major,
//   C^T = op(B)^T op(A)^T  (n x m),
// one cuBLAS call with the operands swapped and each keeping its own transpose
// flag: B's buffer read column-major is B^T, so op(B)^T is "N" when op is N and
// "T" when op is T. The leading dimensions stay as given.
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_launch.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace gptqd::cuda {
namespace {

__global__ void scale_2d_kernel(int64_t rows, int64_t cols, float* c, int64_t ldc, float beta) {
  const int64_t n = rows * cols;
  for (int64_t i = grid_start(); i < n; i += grid_stride()) {
    float* p = c + (i / cols) * ldc + i % cols;
    *p = beta == 0.0f ? 0.0f : beta * *p;
  }
}

cublasOperation_t op_of(bool trans) { return trans ? CUBLAS_OP_T : CUBLAS_OP_N; }

}  // namespace

void launch_scale_2d(int64_t rows, int64_t cols, float* c, int64_t ldc, float beta,
                     cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return;
  scale_2d_kernel<<<grid_for(rows * cols), kThreads, 0, stream>>>(rows, cols, c, ldc, beta);
  GPTQD_CUDA_LAUNCH_CHECK(scale_2d_kernel);
}

void gemm_rowmajor(cublasHandle_t handle, bool trans_a, bool trans_b, int64_t m, int64_t n,
                   int64_t k, float alpha, const float* a, int64_t lda, int64_t stride_a,
                   const float* b, int64_t ldb, int64_t stride_b, float beta, float* c, int64_t ldc,
                   int64_t stride_c, int64_t batch) {
  GPTQD_CHECK(m >= 1 && n >= 1 && k >= 1 && batch >= 1, "gemm_rowmajor of {}x{}x{} x{}", m, n, k,
              batch);
  if (batch == 1) {
    GPTQD_CUBLAS_CHECK(cublasSgemm_64(handle, op_of(trans_b), op_of(trans_a), n, m, k, &alpha, b,
                                      ldb, a, lda, &beta, c, ldc));
    return;
  }
  GPTQD_CUBLAS_CHECK(cublasSgemmStridedBatched_64(handle, op_of(trans_b), op_of(trans_a), n, m, k,
                                                  &alpha, b, ldb, stride_b, a, lda, stride_a, &beta,
                                                  c, ldc, stride_c, batch));
}

void CudaBackend::gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                       const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                       float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  activate();
  if (k <= 0) {
    // op(A) op(B) is empty: C = beta * C, done explicitly as on the CPU.
    launch_scale_2d(m, n, c, ldc, beta, stream());
    return;
  }
  gemm_rowmajor(cublas_.get(), trans_a, trans_b, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta, c, ldc,
                0, 1);
}

}  // namespace gptqd::cuda

namespace gptqd::cuda {

// kFast: both operands rounded to bf16 into stream-ordered scratch (packed; the weight's copy
// is half its fp32 size), then one tensor-core GEMM with fp32 accumulation.
void CudaBackend::forward_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                               float alpha, const float* a, int64_t lda, const float* b,
                               int64_t ldb, float beta, float* c, int64_t ldc) {
  if (precision_ == Precision::kExact || m <= 0 || n <= 0 || k <= 0) {
    gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  activate();
  // A as stored is (trans_a ? k x m : m x k), B (trans_b ? n x k : k x n).
  const int64_t a_rows = trans_a ? k : m, a_cols = trans_a ? m : k;
  const int64_t b_rows = trans_b ? n : k, b_cols = trans_b ? k : n;
  DeviceArray<uint16_t> a16(a_rows * a_cols, stream()), b16(b_rows * b_cols, stream());
  launch_to_bf16_2d(a_rows, a_cols, a, lda, a16.get(), stream());
  launch_to_bf16_2d(b_rows, b_cols, b, ldb, b16.get(), stream());
  gemm_rowmajor_bf16(cublas_.get(), trans_a, trans_b, m, n, k, alpha, a16.get(), a_cols, b16.get(),
                     b_cols, beta, c, ldc);
}

void CudaBackend::to_bf16(int64_t count, const float* src, uint16_t* dst) {
  if (count <= 0) return;
  activate();
  launch_to_bf16_2d(1, count, src, count, dst, stream());
}

// kFast with the weight already in bf16: only A is rounded into scratch.
void CudaBackend::forward_gemm_bf16_b(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                                      float alpha, const float* a, int64_t lda, const uint16_t* b,
                                      int64_t ldb, float beta, float* c, int64_t ldc) {
  GPTQD_CHECK(precision_ == Precision::kFast, "forward_gemm_bf16_b in precision {}",
              precision_name(precision_));
  if (m <= 0 || n <= 0) return;
  activate();
  if (k <= 0) {
    launch_scale_2d(m, n, c, ldc, beta, stream());
    return;
  }
  const int64_t a_rows = trans_a ? k : m, a_cols = trans_a ? m : k;
  DeviceArray<uint16_t> a16(a_rows * a_cols, stream());
  launch_to_bf16_2d(a_rows, a_cols, a, lda, a16.get(), stream());
  gemm_rowmajor_bf16(cublas_.get(), trans_a, trans_b, m, n, k, alpha, a16.get(), a_cols, b, ldb,
                     beta, c, ldc);
}

}  // namespace gptqd::cuda
