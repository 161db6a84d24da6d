// The GPTQ driver (DESIGN.md §4): quantizes one linear layer's weight W
// [rows, cols] (out x in) given the Hessian H [cols, cols] of its inputs, on
// any Backend. It reproduces the reference (IST-DASLab/gptq fasterquant with
// AutoGPTQ's static_groups and g_idx) step for step; the comments in gptq.cpp
// name each step. rtn_quantize is the round-to-nearest baseline with the same
// quantizer and groups, and output_error measures either on the calibration
// inputs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "worker/hessian.h"

namespace gptqd {

struct GptqOptions {
  int bits = 4;              // 2, 3, 4 or 8
  int64_t group_size = 128;  // -1: one group per row; otherwise >= 1
  bool sym = false;
  bool act_order = false;      // process columns by descending diag(H)
  bool static_groups = false;  // group params from the original W, before any update
  double damp_percent = 0.01;  // lambda = damp_percent * mean(diag H); >= 0
  int64_t block_size = 128;    // columns per GPTQ block; >= 1
  bool mse_clip = false;       // grid-search the clipping range (quant.py's mse)
  // When the Cholesky of the damped H fails, damp_percent is doubled (0 becomes
  // kFirstRetryDamp) and the factorization retried, at most this many times
  // (>= 0), each retry logged as a warning; then gptqd::Error. With the
  // defaults the last try uses 0.01 * 2^8 = 2.56, more than any Gram matrix that
  // is positive semidefinite up to rounding needs; the doubling keeps the damp
  // within 2x of the smallest that works, since every bit of damp beyond that
  // weakens GPTQ's error compensation (an infinite damp is RTN).
  int max_damp_retries = 8;
  std::string label;  // "block 3 self_attention.dense", used in logs and errors
};

// damp_percent of the first retry when the configured one is 0.
constexpr double kFirstRetryDamp = 0.01;

// Wall-clock seconds of gptq_quantize's phases (the backend synchronized at
// each boundary): checks, dead columns, permutation and static params; damping
// and the factorization (retries included); the column sweep with its
// trailing updates; the result in original column order.
struct GptqSeconds {
  double prepare = 0, factor = 0, sweep = 0, finish = 0;
};

struct QuantizedLayer {
  int64_t rows = 0, cols = 0, groups = 0;
  // [rows, cols], ORIGINAL column order.
  std::vector<uint8_t> codes;
  // [groups, rows]; group g in processing order (AutoGPTQ's layout): the order
  // g_idx refers to.
  std::vector<float> scales, zeros;
  // [cols]: group of each ORIGINAL column.
  std::vector<int32_t> g_idx;
  // [cols]: processing order, perm[j] = the original column processed j-th
  // (identity without act_order).
  std::vector<int32_t> perm;
  // [rows, cols] ORIGINAL order; == scales[g_idx[c]*rows+r] * (codes - zeros[...]) exactly.
  std::vector<float> dequant;
  double loss = 0;       // sum over all rows and columns of (w - q)^2 / U_jj^2 / 2
  double damp_used = 0;  // final damp_percent after retries
  GptqSeconds seconds;   // gptq_quantize only (zero from rtn_quantize)
};

// Step 5's factorization done outside the backend, in host memory: by
// worker/distributed_factor.h once across the replicas of a stage
// (parallel.factorization: distributed) instead of by each replica's backend.
class HostFactorizer {
 public:
  virtual ~HostFactorizer() = default;
  // Backend::inverse_cholesky_upper's contract on host memory: h [n, n]
  // row-major, symmetric positive definite -> U, upper triangular with
  // H^-1 = U^T U, strictly lower part zeroed; false (h then undefined) when
  // the Cholesky fails. Collective over the implementation's group: every
  // member calls it with the same n and the same h, and every member gets the
  // same U and the same return value.
  virtual bool inverse_cholesky_upper(int64_t n, float* h) = 0;
};

// GPTQ of W (host [rows, cols] row-major) with H (host [cols, cols] as
// accumulated; not modified). Needs rows, cols >= 1 and valid options.
// Guarantees: codes in [0, 2^bits - 1]; groups = 1 for group_size -1, else
// ceil(cols / group_size) (the last group shorter when group_size does not
// divide cols); g_idx as AutoGPTQ writes it (c / group_size without act_order
// or with static_groups; the group in processing order with act_order alone);
// perm[j] = the original column processed j-th; dequant exactly
// scales[g_idx[c] * rows + r] * (codes[r, c] - zeros[g_idx[c] * rows + r]);
// columns with H_cc == 0 are quantized as zero weights.
// Throws gptqd::Error naming opt.label on a non-finite W or H, on bad options,
// and when the damped H stays non-positive-definite after max_damp_retries.
// factorizer: null, the backend factorizes; otherwise it does (each try of
// the damping loop) and U is uploaded: then the call is collective over its
// group, every member passing the same H and options (its own rows of W).
QuantizedLayer gptq_quantize(Backend& be, const float* w, int64_t rows, int64_t cols,
                             const float* h, const GptqOptions& opt,
                             HostFactorizer* factorizer = nullptr);

// Round to nearest with the same quantizer and groups (no H; natural column
// order; the GPTQ-only options act_order, static_groups, damp_percent,
// block_size and max_damp_retries are validated but not used). loss and
// damp_used are 0;
// measure with output_error. Throws as gptq_quantize for W and the options.
// Throws gptqd::Error naming opt.label, the row and the group when a scale or zero point of q
// is not finite (finite weights whose range overflows fp32). gptq_quantize and rtn_quantize
// call it on their results.
void check_params_finite(const QuantizedLayer& q, const GptqOptions& opt);

QuantizedLayer rtn_quantize(Backend& be, const float* w, int64_t rows, int64_t cols,
                            const GptqOptions& opt);

// trace((W - Q) H (W - Q)^T): the output error on the calibration inputs in H's
// units (host arrays; W and Q [rows, cols], H [cols, cols] symmetric). Computed
// with one backend gemm and a double-precision sum.
double output_error(Backend& be, const float* w, const float* q, int64_t rows, int64_t cols,
                    const float* h);

// The same quantity from the inputs themselves, for H = (2 / samples) X^T X:
// (2 / samples) ||(W - Q) X^T||_F^2, with X host [tokens, cols]. Costs
// 2 rows cols tokens flops instead of 2 rows cols^2: the cheaper one when
// tokens < cols. samples >= 1.
double output_error_from_inputs(Backend& be, const float* w, const float* q, int64_t rows,
                                int64_t cols, const float* x, int64_t tokens, int64_t samples);

}  // namespace gptqd
