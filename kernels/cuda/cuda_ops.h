// The launchers of the CUDA backend's kernels: raw device pointers, sizes and a
// stream, nothing of the Backend object (TensorRT-LLM's kernels/ style). Each is
// defined next to its kernel in one kernels/cuda/*.cu file; the CudaBackend
// methods check arguments and call these. All are asynchronous on `stream`.
// Matrices are row-major with the leading dimensions given, as in backend.h.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/backend.h"

namespace gptqd::cuda {

// cuda_memory.cu: p[0:n] = value.
void launch_fill(float* p, float value, int64_t n, cudaStream_t stream);

// cuda_gemm.cu: C[r, c] = beta * C[r, c] for r < rows, c < cols; beta == 0
// writes exact zeros (clearing NaN/Inf), as BLAS does.
void launch_scale_2d(int64_t rows, int64_t cols, float* c, int64_t ldc, float beta,
                     cudaStream_t stream);

// cuda_gemm.cu: `batch` row-major GEMMs C_b = alpha op(A_b) op(B_b) + beta C_b,
// op(A_b) m x k, op(B_b) k x n, X_b = X + b * stride_x. Needs m, n, k, batch >= 1.
// Runs on the handle's stream.
void gemm_rowmajor(cublasHandle_t handle, bool trans_a, bool trans_b, int64_t m, int64_t n,
                   int64_t k, float alpha, const float* a, int64_t lda, int64_t stride_a,
                   const float* b, int64_t ldb, int64_t stride_b, float beta, float* c, int64_t ldc,
                   int64_t stride_c, int64_t batch);

// cuda_bf16.cu: dst[r*cols + c] = bf16(src[r*lds + c]) (round to nearest even, the bits of
// kernels/half.h f32_to_bf16): a rows x cols operand of the fast precision, packed.
void launch_to_bf16_2d(int64_t rows, int64_t cols, const float* src, int64_t lds, uint16_t* dst,
                       cudaStream_t stream);

// cuda_bf16.cu: as gemm_rowmajor (batch 1) on bf16 operands (as launch_to_bf16_2d writes
// them), C fp32, products summed in fp32 (tensor cores). Needs m, n, k >= 1.
void gemm_rowmajor_bf16(cublasHandle_t handle, bool trans_a, bool trans_b, int64_t m, int64_t n,
                        int64_t k, float alpha, const uint16_t* a, int64_t lda, const uint16_t* b,
                        int64_t ldb, float beta, float* c, int64_t ldc);

// cuda_xtx.cu: h[i, j] = h[j, i] for j < i: copies the upper triangle of the
// row-major d x d matrix h onto its strictly lower triangle.
void launch_mirror_upper_to_lower(int64_t d, float* h, cudaStream_t stream);

// cuda_cholesky.cu: a[k] = h[n*n - 1 - k] in fp64 (the matrix reversed in both
// indices, P H P with P the reversal permutation).
void launch_reverse_to_f64(int64_t n, const float* h, double* a, cudaStream_t stream);
// cuda_cholesky.cu: h[r, c] = fp32(a[n*n - 1 - (c*n + r)]) for c >= r, 0 for c < r
// (see inverse_cholesky_upper for why this is U).
void launch_upper_from_reversed(int64_t n, const double* a, float* h, cudaStream_t stream);

// cuda_quant_params.cu: scale[r], zero[r] of w[r, 0:cols] (see Backend::quant_params).
void launch_quant_params(int64_t rows, int64_t cols, const float* w, int64_t ldw,
                         const QuantGrid& grid, float* scale, float* zero, cudaStream_t stream);

// cuda_quantize_rtn.cu: see Backend::quantize_rtn; col_group is DEVICE memory here.
void launch_quantize_rtn(int64_t rows, int64_t cols, const float* w, int64_t ldw,
                         const float* scale, const float* zero, const int32_t* col_group, int maxq,
                         uint8_t* codes, int64_t ldc, float* qw, int64_t ldq, cudaStream_t stream);

// cuda_gptq_block.cu: see GptqBlock; blk.col_group is DEVICE memory here.
// max_shared_bytes: the device's opt-in shared memory per block. Throws
// gptqd::Error when even one row's block does not fit in shared memory.
void launch_gptq_block(const GptqBlock& blk, int max_shared_bytes, cudaStream_t stream);

// cuda_layer_norm.cu: see Backend::layer_norm (y may alias x).
void launch_layer_norm(int64_t rows, int64_t cols, const float* x, const float* gamma,
                       const float* beta, float eps, float* y, cudaStream_t stream);

// cuda_elementwise.cu: x = gelu_bloom(x); y += a; y[r, :] += bias.
void launch_gelu(int64_t n, float* x, cudaStream_t stream);
void launch_add(int64_t n, const float* a, float* y, cudaStream_t stream);
void launch_add_bias(int64_t rows, int64_t cols, const float* bias, float* y, cudaStream_t stream);

// cuda_attention.cu: in place on `heads` score matrices s [heads, seq, seq] of
// heads head0 .. head0 + heads - 1: s[h, i, j] += slopes[head0 + h] * j, causal
// mask (j > i -> weight exactly 0), softmax over j in fp32. slopes is DEVICE
// memory [n_head].
void launch_alibi_softmax(int64_t heads, int64_t seq, int64_t head0, const float* slopes, float* s,
                          cudaStream_t stream);

// cuda_rms_norm.cu: see Backend::rms_norm (y may alias x).
void launch_rms_norm(int64_t rows, int64_t cols, const float* x, const float* gamma, float eps,
                     float* y, cudaStream_t stream);

// cuda_rope.cu: see Backend::rope; x, cos and sin are device memory.
void launch_rope(int64_t tokens, int64_t seq, int64_t n_heads, int64_t head_dim, float* x,
                 const float* cos, const float* sin, cudaStream_t stream);

// cuda_llama_elementwise.cu: gate = silu(gate) * up; x = relu(x) (kernels/nn_math.h).
void launch_silu_mul(int64_t n, float* gate, const float* up, cudaStream_t stream);
void launch_relu(int64_t n, float* x, cudaStream_t stream);

// cuda_gqa_attention.cu: in place on `heads` score matrices s [heads, seq, seq]:
// causal mask (j > i -> weight exactly 0), softmax over j in fp32.
void launch_causal_softmax(int64_t heads, int64_t seq, float* s, cudaStream_t stream);

}  // namespace gptqd::cuda
