// The CPU backend: OpenBLAS/LAPACKE for the dense linear algebra and plain
// loops for the rest. It is the reference every test runs and the twin each
// CUDA op is checked against. Memory is ordinary host memory, so to_device and
// to_host are copies. The implementation is split by concern:
//   cpu_backend.cpp  memory, copies, accounting, make_cpu_backend
//   cpu_memory.cpp   large host allocations (huge pages)
//   cpu_blas.cpp     OpenBLAS's own thread count and build (cpu_blas.h)
//   cpu_parallel.h   the threads: items whose results do not depend on the thread count
//   cpu_linalg.cpp   gemm, forward_gemm, xtx (tiles, one BLAS call each), inverse_cholesky_upper
//                    (kFast: operands rounded to bf16 into scratch, then the fp32 BLAS calls)
//   cpu_quant.cpp    quant_params, quantize_rtn, gptq_block
//   cpu_nn.cpp       layer_norm, gelu, add, add_bias
//   cpu_attention.cpp alibi_attention, attention (grouped KV heads)
//   cpu_llama_ops.cpp rms_norm, rope, silu_mul, relu
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "kernels/backend.h"
#include "kernels/memory_counter.h"

namespace gptqd {

class CpuBackend final : public Backend {
 public:
  // threads: the threads of every op (kernels/cpu/cpu_parallel.h), and OpenBLAS's in the
  // factorization; <= 0: cpu_cores_available(). Sets OpenBLAS to one thread outside the
  // factorization (kernels/cpu/cpu_blas.h).
  explicit CpuBackend(int threads);
  std::string name() const override;
  std::string threading() const override;
  std::string kernel_warning() const override;
  int threads() const { return threads_; }

  float* alloc(int64_t count) override;
  void release(float* p) override;
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

 private:
  friend class CountedScratch;
  // Writes row r of op(B) as stored (cols values) in fp32, bf16-valued, into dst.
  using PackB = std::function<void(int64_t r, float* dst, int64_t cols)>;
  // kFast's product: A rounded to bf16 and B packed by pack_b, each into counted scratch, then
  // one fp32 BLAS call (the products of bf16 values are exact in fp32; only the sums round).
  // Not a bf16 GEMM (cblas_sbgemm): Debian's OpenBLAS does not export one, and oneMKL's ran at
  // half the fp32 speed on a CPU with AVX512-BF16 (docs/performance.md, "bf16 on the CPU").
  void fast_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                 const float* a, int64_t lda, const PackB& pack_b, float beta, float* c,
                 int64_t ldc);
  int threads_;
  Precision precision_ = Precision::kExact;
  MemoryCounter device_, host_;  // alloc/alloc_u8 + op scratch; alloc_host
};

// Op scratch counted as device memory for its lifetime (the CUDA twin allocates the
// same from its pool): `bytes` from cpu::alloc_bytes, not initialised.
class CountedScratch {
 public:
  CountedScratch(CpuBackend& be, int64_t bytes);
  ~CountedScratch();
  CountedScratch(const CountedScratch&) = delete;
  CountedScratch& operator=(const CountedScratch&) = delete;
  template <typename T>
  T* as() {
    return static_cast<T*>(p_);
  }

 private:
  CpuBackend& be_;
  void* p_;
};

}  // namespace gptqd
