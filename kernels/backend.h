// The numerical operations the worker needs, behind one interface with a CPU
// implementation (kernels/cpu, the reference every test runs) and a CUDA one
// (kernels/cuda). This header names no CUDA, MPI or BLAS type.
//
// Conventions for every op:
//  - All matrices are fp32, row-major, with an explicit leading dimension
//    (elements between the starts of consecutive rows).
//  - Pointers come from this backend's alloc() (host memory on CPU, device
//    memory on CUDA). Ops may run asynchronously; synchronize() waits, and
//    to_host() returns only when the data is on the host.
//  - Shapes are checked by the caller (worker/); ops check only what they must
//    to stay memory-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace gptqd {

// Quantizer settings that the per-group parameter search needs (DESIGN.md §4).
struct QuantGrid {
  int bits = 4;           // 2, 3, 4 or 8
  bool sym = false;       // symmetric: zero = (maxq + 1) / 2
  bool mse_clip = false;  // grid-search a shrink of the range minimising |w - q|^norm
  float mse_norm = 2.4f;  // the reference's defaults
  int mse_grid = 100;
  float mse_maxshrink = 0.8f;
};

// One column block of the GPTQ sweep (DESIGN.md §4), for `rows` rows of W.
// Columns are in processing order (already permuted for act_order). For each
// column i < count, in order, and every row r:
//   g = col_group[i]; s = scale[g*rows + r]; z = zero[g*rows + r]
//   code = quant_code(W[r,i], s, z, maxq); q = s * (code - z)
//   err = (W[r,i] - q) / hinv[i,i]
//   W[r, i+1:count] -= err * hinv[i, i+1:count]
//   codes[r*ldc + i] = code; qw[r*ldq + i] = q; err_out[r*lde + i] = err
//   loss[r] += (W[r,i] - q)^2 / hinv[i,i]^2 / 2
// The update of the columns after the block (W[:, count:] -= Err * Hinv[blk, after])
// is a separate gemm by the caller.
struct GptqBlock {
  int64_t rows = 0;
  int64_t count = 0;   // columns in this block (<= block_size)
  float* w = nullptr;  // W[:, block]; updated in place
  int64_t ldw = 0;
  const float* hinv = nullptr;  // the count x count diagonal block of the upper factor
  int64_t ldh = 0;
  const float* scale = nullptr;        // [ngroups, rows]
  const float* zero = nullptr;         // [ngroups, rows]
  const int32_t* col_group = nullptr;  // [count], host memory: group of each column
  int maxq = 15;
  uint8_t* codes = nullptr;  // [rows, ldc]
  int64_t ldc = 0;
  float* qw = nullptr;  // dequantized weights [rows, ldq]
  int64_t ldq = 0;
  float* err = nullptr;  // [rows, lde]
  int64_t lde = 0;
  float* loss = nullptr;  // [rows], accumulated (+=)
};

// The arithmetic of the ops marked [precision] below (docs/numerics.md). Every other op
// computes in fp32 (fp64 where it says so) whatever the setting.
enum class Precision {
  kExact,  // fp32 operands, fp32 accumulation (TF32 off on CUDA)
  kFast,   // operands rounded to bf16 (round to nearest even), products accumulated in fp32:
           // tensor cores on CUDA; the CPU rounds the same way, so the quality cost shows there
};

// "exact" / "fast", the spelling of the job file's parallel.precision.
inline const char* precision_name(Precision p) {
  switch (p) {
    case Precision::kExact:
      return "exact";
    case Precision::kFast:
      return "fast";
  }
  return "?";
}

// Bytes held through a backend, for `gptqd plan`'s memory model and the tests that
// hold the model to what the worker allocates (coordinator/plan_estimate.h).
struct MemoryStats {
  // alloc / alloc_u8 and the scratch of ops (the fp64 factorization, attention
  // scores); CUDA: the stream-ordered pool's figures, library workspaces excluded.
  int64_t device_in_use = 0, device_peak = 0;
  int64_t host_in_use = 0, host_peak = 0;  // alloc_host
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // Optional: one line saying how many threads each library under the backend really runs
  // (the CPU backend: its own, and the BLAS's in and outside the factorization); empty when
  // there is nothing to say.
  virtual std::string threading() const { return {}; }
  // Optional: one line when the backend's libraries run slower code than the machine allows
  // (the CPU backend: OpenBLAS kernels narrower than the CPU's vectors); empty otherwise.
  virtual std::string kernel_warning() const { return {}; }

  // ---- memory -------------------------------------------------------------
  virtual float* alloc(int64_t count) = 0;  // zero-initialised fp32 buffer
  virtual void release(float* p) = 0;
  virtual uint8_t* alloc_u8(int64_t count) = 0;
  virtual void release_u8(uint8_t* p) = 0;
  virtual void to_device(float* dst, const float* host, int64_t count) = 0;
  virtual void to_host(float* host, const float* src, int64_t count) = 0;
  virtual void to_host_u8(uint8_t* host, const uint8_t* src, int64_t count) = 0;
  virtual void copy(float* dst, const float* src, int64_t count) = 0;
  // dst[r*ldd + c] = src[r*lds + c] for r < rows, c < cols
  virtual void copy_2d(int64_t rows, int64_t cols, const float* src, int64_t lds, float* dst,
                       int64_t ldd) = 0;
  virtual void fill(float* dst, float value, int64_t count) = 0;
  virtual void synchronize() = 0;

  // Host memory that to_device / to_host move at full speed: page-locked
  // (cudaHostAlloc) on CUDA, ordinary aligned memory on the CPU. Holds the
  // activations that do not fit on the device and the prefetched next block's
  // weights. Not initialised; host memory on every backend.
  virtual float* alloc_host(int64_t count) = 0;
  virtual void release_host(float* p) = 0;  // never throws

  // What is held now and the most held since construction or reset_peak().
  // Waits for queued work (stream-ordered frees count when they have run).
  virtual MemoryStats memory_stats() = 0;
  virtual void reset_peak() = 0;

  // ---- precision -------------------------------------------------------------
  // The arithmetic of forward_gemm and xtx; kExact from construction. Set it before the
  // first op: a change applies to the ops queued after it.
  virtual void set_precision(Precision p) = 0;
  virtual Precision precision() const = 0;

  // ---- dense linear algebra ----------------------------------------------
  // C[m,n] = alpha * op(A) * op(B) + beta * C; op(A) is m x k, op(B) is k x n. Always fp32
  // operands (the GPTQ sweep's updates use it).
  virtual void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                    const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                    int64_t ldc) = 0;
  // [precision] gemm for the forward's linear layers. kExact: gemm, the same bits. kFast:
  // C = alpha * bf16(op(A)) * bf16(op(B)) + beta * C, each element of A and B rounded to bf16
  // first, the (exact) products summed in fp32.
  virtual void forward_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                            float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
                            float beta, float* c, int64_t ldc) = 0;
  // dst[i] = f32_to_bf16(src[i]) (kernels/half.h: nearest, ties to even) for i < count.
  virtual void to_bf16(int64_t count, const float* src, uint16_t* dst) = 0;
  // kFast's forward_gemm with op(B) held in bf16 (b: bit patterns as f32_to_bf16 gives them,
  // row stride ldb; a weight kept resident at half the memory): bit for bit forward_gemm in
  // kFast on B = bf16_to_f32 of each element. Throws gptqd::Error in kExact.
  virtual void forward_gemm_bf16_b(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                                   float alpha, const float* a, int64_t lda, const uint16_t* b,
                                   int64_t ldb, float beta, float* c, int64_t ldc) = 0;
  // [precision] H[d,d] = alpha * H + beta * X^T X for X [n, d] (ld = d). Both triangles
  // written, H exactly symmetric. kFast: X rounded to bf16 first, the products summed in fp32.
  virtual void xtx(int64_t n, int64_t d, const float* x, float alpha, float beta, float* h) = 0;
  // In place: SPD H [n,n] -> U, upper triangular, with H^-1 = U^T U (Cholesky of
  // H, inverse from it, upper Cholesky of the inverse); strictly lower part zeroed.
  // Returns false (H unspecified) when H is not positive definite.
  virtual bool inverse_cholesky_upper(int64_t n, float* h) = 0;

  // ---- quantizer ------------------------------------------------------------
  // Per row r < rows: scale/zero of W[r, 0:cols] (row stride ldw) with the
  // quantizer of DESIGN.md §4 (mse_clip optional). Writes scale[r], zero[r].
  virtual void quant_params(int64_t rows, int64_t cols, const float* w, int64_t ldw,
                            const QuantGrid& grid, float* scale, float* zero) = 0;
  // Round to nearest: q[r,c] = fake_quant(w[r,c], scale[col_group[c]*rows+r], ...),
  // codes as above (either output may be null). col_group is host memory.
  virtual void quantize_rtn(int64_t rows, int64_t cols, const float* w, int64_t ldw,
                            const float* scale, const float* zero, const int32_t* col_group,
                            int maxq, uint8_t* codes, int64_t ldc, float* qw, int64_t ldq) = 0;
  // One block of the GPTQ sweep, see GptqBlock.
  virtual void gptq_block(const GptqBlock& blk) = 0;

  // ---- BLOOM forward (layer_norm, add and add_bias serve every family) ------
  // y[r,:] = (x[r,:] - mean) / sqrt(var + eps) * gamma + beta; y may alias x.
  virtual void layer_norm(int64_t rows, int64_t cols, const float* x, const float* gamma,
                          const float* beta, float eps, float* y) = 0;
  virtual void gelu(int64_t n, float* x) = 0;                 // in place, gelu_bloom
  virtual void add(int64_t n, const float* a, float* y) = 0;  // y += a
  virtual void add_bias(int64_t rows, int64_t cols, const float* bias,
                        float* y) = 0;  // y[r,:] += b
  // Causal self-attention with ALiBi for `batch` sequences of `seq` tokens.
  // qkv: [batch*seq, n_head*3*head_dim], per token grouped [n_head, 3, head_dim]
  // (BLOOM's fused layout). ctx: [batch*seq, n_head*head_dim]. Scores
  // q.k / sqrt(head_dim) + slope_h * key_pos, masked causally, softmax in fp32.
  virtual void alibi_attention(int64_t batch, int64_t seq, int64_t n_head, int64_t head_dim,
                               const float* qkv, float* ctx) = 0;

  // ---- Llama / OPT forward (DESIGN.md §5b) -----------------------------------
  // y[r,:] = x[r,:] / sqrt(mean(x[r,:]^2) + eps) * gamma (transformers' RMSNorm, fp32); y may
  // alias x. The per-head q/k norm of Qwen3 is rows = tokens * heads, cols = head_dim.
  virtual void rms_norm(int64_t rows, int64_t cols, const float* x, const float* gamma, float eps,
                        float* y) = 0;
  // Rotary embedding, in place, of x [tokens, n_heads * head_dim] (contiguous) for sequences of
  // `seq` tokens: token t sits at position p = t % seq. For each head and i < half = head_dim/2,
  // with c = cos[p*half + i], s = sin[p*half + i] (tables [seq, half] in backend memory):
  //   (x1, x2) = (x[i], x[i + half]);  x[i] = x1 c - x2 s;  x[i + half] = x2 c + x1 s
  // (transformers' rotate_half convention; full-head rotation only). Needs an even head_dim.
  virtual void rope(int64_t tokens, int64_t seq, int64_t n_heads, int64_t head_dim, float* x,
                    const float* cos, const float* sin) = 0;
  // Causal self-attention with grouped KV heads for `batch` sequences of `seq` tokens:
  // q, ctx [batch*seq, n_head*head_dim]; k, v [batch*seq, n_kv_head*head_dim]; query head h
  // reads KV head h / (n_head / n_kv_head). scores = scale * q.k, masked causally, softmax in
  // fp32, ctx = P v. Needs n_head % n_kv_head == 0.
  virtual void attention(int64_t batch, int64_t seq, int64_t n_head, int64_t n_kv_head,
                         int64_t head_dim, const float* q, const float* k, const float* v,
                         float scale, float* ctx) = 0;
  // gate[i] = silu(gate[i]) * up[i] (the SiLU-gated MLP product; silu in kernels/nn_math.h).
  virtual void silu_mul(int64_t n, float* gate, const float* up) = 0;
  virtual void relu(int64_t n, float* x) = 0;  // in place
};

// CPU backend (OpenBLAS/LAPACK + loops) on `threads` threads; <= 0: cpu_cores_available().
std::unique_ptr<Backend> make_cpu_backend(int threads = 0);
// The CPU cores this process may run on: its affinity mask (what mpirun's or srun's binding
// gives a rank), else std::thread::hardware_concurrency().
int cpu_cores_available();

// CUDA backend on `device`; throws gptqd::Error when built without CUDA or no GPU.
std::unique_ptr<Backend> make_cuda_backend(int device);
// Number of visible CUDA devices (0 when built without CUDA or none present).
int cuda_device_count();

}  // namespace gptqd
