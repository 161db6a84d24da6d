// The CUDA backend: the Backend interface (kernels/backend.h) on one GPU, with
// cuBLAS for the GEMMs, cuSOLVER (fp64) for the factorizations and own kernels
// for the rest. Internal to kernels/cuda: this header names CUDA types; the
// rest of gptqd reaches the backend through make_cuda_backend() and
// kernels/cuda/cuda_info.h. The methods are split by concern, one file each:
//   cuda_backend.cu      construction, the device, name
//   cuda_device.cu       make_cuda_backend, cuda_device_count, cuda_info.h
//   cuda_memory.cu       alloc, copies, fill, synchronize, pinned host memory,
//                        memory_stats
//   cuda_gemm.cu         gemm, forward_gemm                 cuda_xtx.cu  xtx
//   cuda_bf16.cu         the fast precision's bf16 rounding and bf16 GEMM
//   cuda_cholesky.cu     inverse_cholesky_upper
//   cuda_quant_params.cu quant_params  cuda_quantize_rtn.cu quantize_rtn
//   cuda_gptq_block.cu   gptq_block    cuda_layer_norm.cu   layer_norm
//   cuda_elementwise.cu  gelu, add, add_bias
//   cuda_attention.cu    alibi_attention
//   cuda_rms_norm.cu     rms_norm      cuda_rope.cu         rope
//   cuda_llama_elementwise.cu  silu_mul, relu
//   cuda_gqa_attention.cu      attention (grouped KV heads)
//
// Execution model: every op is queued on the backend's one stream, in call
// order, so ops see the results of earlier ops without synchronization. The
// host waits only where the interface says so: to_host*, synchronize,
// inverse_cholesky_upper (its result depends on the factorization's info), and
// to_device of more than kStagingBytes (see upload()).
// Ops make the backend's device current on the calling thread first.
#pragma once

#include <cstdint>
#include <string>

#include "kernels/backend.h"
#include "kernels/cuda/cuda_resources.h"
#include "kernels/memory_counter.h"

namespace gptqd::cuda {

class CudaBackend final : public Backend {
 public:
  // Makes `device` current and creates the stream and library handles on it.
  explicit CudaBackend(int device);
  ~CudaBackend() override;
  std::string name() const override;  // "cuda:<device>"

  float* alloc(int64_t count) override;
  void release(float* p) override;  // never throws (called from destructors)
  uint8_t* alloc_u8(int64_t count) override;
  void release_u8(uint8_t* p) override;
  void to_device(float* dst, const float* host, int64_t count) override;
  void to_host(float* host, const float* src, int64_t count) override;
  void to_host_u8(uint8_t* host, const uint8_t* src, int64_t count) override;
  void copy(float* dst, const float* src, int64_t count) override;
  void copy_2d(int64_t rows, int64_t cols, const float* src, int64_t lds, float* dst,
               int64_t ldd) override;
  void fill(float* dst, float value, int64_t count) override;
  void synchronize() override;
  float* alloc_host(int64_t count) override;
  void release_host(float* p) override;
  MemoryStats memory_stats() override;
  void reset_peak() override;

  void set_precision(Precision p) override { precision_ = p; }
  Precision precision() const override { return precision_; }

  void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
            const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
            int64_t ldc) override;
  void forward_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                    const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                    int64_t ldc) override;
  void to_bf16(int64_t count, const float* src, uint16_t* dst) override;
  void forward_gemm_bf16_b(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                           const float* a, int64_t lda, const uint16_t* b, int64_t ldb, float beta,
                           float* c, int64_t ldc) override;
  void xtx(int64_t n, int64_t d, const float* x, float alpha, float beta, float* h) override;
  bool inverse_cholesky_upper(int64_t n, float* h) override;

  void quant_params(int64_t rows, int64_t cols, const float* w, int64_t ldw, const QuantGrid& grid,
                    float* scale, float* zero) override;
  void quantize_rtn(int64_t rows, int64_t cols, const float* w, int64_t ldw, const float* scale,
                    const float* zero, const int32_t* col_group, int maxq, uint8_t* codes,
                    int64_t ldc, float* qw, int64_t ldq) override;
  void gptq_block(const GptqBlock& blk) override;

  void layer_norm(int64_t rows, int64_t cols, const float* x, const float* gamma, const float* beta,
                  float eps, float* y) override;
  void gelu(int64_t n, float* x) override;
  void add(int64_t n, const float* a, float* y) override;
  void add_bias(int64_t rows, int64_t cols, const float* bias, float* y) override;
  void alibi_attention(int64_t batch, int64_t seq, int64_t n_head, int64_t head_dim,
                       const float* qkv, float* ctx) override;
  void rms_norm(int64_t rows, int64_t cols, const float* x, const float* gamma, float eps,
                float* y) override;
  void rope(int64_t tokens, int64_t seq, int64_t n_heads, int64_t head_dim, float* x,
            const float* cos, const float* sin) override;
  void attention(int64_t batch, int64_t seq, int64_t n_head, int64_t n_kv_head, int64_t head_dim,
                 const float* q, const float* k, const float* v, float scale, float* ctx) override;
  void silu_mul(int64_t n, float* gate, const float* up) override;
  void relu(int64_t n, float* x) override;

  int device() const { return device_; }
  cudaStream_t stream() const { return stream_.get(); }

 private:
  // Makes device_ current on the calling thread (a no-op when it already is).
  void activate() const;
  // Zero-initialised stream-ordered allocation of `bytes` (nullptr for 0).
  void* alloc_bytes(int64_t bytes);
  void release_bytes(void* p) noexcept;
  // Queues a host -> device copy and returns when `host` may be reused. Small
  // copies (<= kStagingBytes: col_group, slopes) go through a pinned staging
  // buffer and do not wait for the device; larger ones wait for the stream
  // (CUDA documents no point at which an asynchronous copy has finished
  // reading pageable memory, and page-locked memory is read by the DMA later).
  void upload(void* dst, const void* host, size_t bytes);
  // A stream-ordered device copy of a small host array (col_group, slopes).
  template <typename T>
  DeviceArray<T> upload_array(const T* host, int64_t count) {
    DeviceArray<T> out(count, stream());
    if (count > 0) upload(out.get(), host, out.bytes());
    return out;
  }
  // Queues a device -> host copy and waits for it.
  void download(void* host, const void* src, size_t bytes);

  static constexpr size_t kStagingBytes = size_t{1} << 20;

  int device_;
  Precision precision_ = Precision::kExact;
  int max_shared_optin_;  // bytes of shared memory a block may opt in to
  CudaStream stream_;
  CublasHandle cublas_;
  CusolverHandle cusolver_;
  PinnedHostBuffer staging_;  // kStagingBytes, for small uploads
  CudaEvent staging_free_;    // recorded after the last copy out of staging_
  MemoryCounter host_;        // alloc_host
};

}  // namespace gptqd::cuda
