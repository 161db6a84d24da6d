// A Backend that forwards every op to a CPU backend, for tests that change or watch one op
// (mutation controls of the forward fidelity tests, the prefetcher's thread check): derive,
// override the op of interest (or on_call(), called before every forwarded op).
#pragma once

#include <memory>
#include <string>

#include "kernels/backend.h"

namespace gptqd::test {

class DelegatingBackend : public Backend {
 public:
  DelegatingBackend() : inner_(make_cpu_backend(1)) {}
  std::string name() const override { return "delegating-cpu"; }

  float* alloc(int64_t n) override { return on_call(), inner_->alloc(n); }
  void release(float* p) override { on_call(), inner_->release(p); }
  uint8_t* alloc_u8(int64_t n) override { return on_call(), inner_->alloc_u8(n); }
  void release_u8(uint8_t* p) override { on_call(), inner_->release_u8(p); }
  void to_device(float* d, const float* h, int64_t n) override {
    on_call(), inner_->to_device(d, h, n);
  }
  void to_host(float* h, const float* s, int64_t n) override {
    on_call(), inner_->to_host(h, s, n);
  }
  void to_host_u8(uint8_t* h, const uint8_t* s, int64_t n) override {
    on_call(), inner_->to_host_u8(h, s, n);
  }
  void copy(float* d, const float* s, int64_t n) override { on_call(), inner_->copy(d, s, n); }
  void copy_2d(int64_t r, int64_t c, const float* s, int64_t ls, float* d, int64_t ld) override {
    on_call(), inner_->copy_2d(r, c, s, ls, d, ld);
  }
  void fill(float* d, float v, int64_t n) override { on_call(), inner_->fill(d, v, n); }
  void synchronize() override { on_call(), inner_->synchronize(); }
  float* alloc_host(int64_t n) override { return on_call(), inner_->alloc_host(n); }
  void release_host(float* p) override { on_call(), inner_->release_host(p); }
  MemoryStats memory_stats() override { return on_call(), inner_->memory_stats(); }
  void reset_peak() override { on_call(), inner_->reset_peak(); }
  void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
            int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) override {
    on_call(), inner_->gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  void set_precision(Precision p) override { on_call(), inner_->set_precision(p); }
  Precision precision() const override { return inner_->precision(); }
  void forward_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                    int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                    int64_t ldc) override {
    on_call(), inner_->forward_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  void to_bf16(int64_t n, const float* s, uint16_t* d) override {
    on_call(), inner_->to_bf16(n, s, d);
  }
  void forward_gemm_bf16_b(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                           const float* a, int64_t lda, const uint16_t* b, int64_t ldb, float beta,
                           float* c, int64_t ldc) override {
    on_call(), inner_->forward_gemm_bf16_b(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  void xtx(int64_t n, int64_t d, const float* x, float alpha, float beta, float* h) override {
    on_call(), inner_->xtx(n, d, x, alpha, beta, h);
  }
  bool inverse_cholesky_upper(int64_t n, float* h) override {
    return on_call(), inner_->inverse_cholesky_upper(n, h);
  }
  void quant_params(int64_t r, int64_t c, const float* w, int64_t ldw, const QuantGrid& g, float* s,
                    float* z) override {
    on_call(), inner_->quant_params(r, c, w, ldw, g, s, z);
  }
  void quantize_rtn(int64_t r, int64_t c, const float* w, int64_t ldw, const float* s,
                    const float* z, const int32_t* cg, int maxq, uint8_t* codes, int64_t ldc,
                    float* qw, int64_t ldq) override {
    on_call(), inner_->quantize_rtn(r, c, w, ldw, s, z, cg, maxq, codes, ldc, qw, ldq);
  }
  void gptq_block(const GptqBlock& blk) override { on_call(), inner_->gptq_block(blk); }
  void layer_norm(int64_t r, int64_t c, const float* x, const float* g, const float* b, float eps,
                  float* y) override {
    on_call(), inner_->layer_norm(r, c, x, g, b, eps, y);
  }
  void gelu(int64_t n, float* x) override { on_call(), inner_->gelu(n, x); }
  void add(int64_t n, const float* a, float* y) override { on_call(), inner_->add(n, a, y); }
  void add_bias(int64_t r, int64_t c, const float* b, float* y) override {
    on_call(), inner_->add_bias(r, c, b, y);
  }
  void alibi_attention(int64_t batch, int64_t seq, int64_t n_head, int64_t hd, const float* qkv,
                       float* ctx) override {
    on_call(), inner_->alibi_attention(batch, seq, n_head, hd, qkv, ctx);
  }
  void rms_norm(int64_t r, int64_t c, const float* x, const float* g, float eps,
                float* y) override {
    on_call(), inner_->rms_norm(r, c, x, g, eps, y);
  }
  void rope(int64_t tokens, int64_t seq, int64_t heads, int64_t hd, float* x, const float* cos,
            const float* sin) override {
    on_call(), inner_->rope(tokens, seq, heads, hd, x, cos, sin);
  }
  void attention(int64_t batch, int64_t seq, int64_t n_head, int64_t n_kv, int64_t hd,
                 const float* q, const float* k, const float* v, float scale, float* ctx) override {
    on_call(), inner_->attention(batch, seq, n_head, n_kv, hd, q, k, v, scale, ctx);
  }
  void silu_mul(int64_t n, float* gate, const float* up) override {
    on_call(), inner_->silu_mul(n, gate, up);
  }
  void relu(int64_t n, float* x) override { on_call(), inner_->relu(n, x); }

 protected:
  virtual void on_call() {}
  Backend& inner() { return *inner_; }

 private:
  std::unique_ptr<Backend> inner_;
};

}  // namespace gptqd::test
