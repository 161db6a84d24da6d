// gptq_quantize: the reference's fasterquant (IST-DASLab/gptq gptq.py, with
// AutoGPTQ's static_groups and g_idx), step by step. Host-side preparation
// (dead columns, permutation) on a copy of W, and of H only for act_order (the
// damped diagonal is patched on the backend's copy); the factorization and the
// sweep on the backend.
#include "worker/gptq.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "kernels/buffer.h"
#include "base/check.h"
#include "base/log.h"
#include "kernels/quant_math.h"
#include "worker/gptq_groups.h"
#include "worker/phase_times.h"

namespace gptqd {
namespace {

using gptq_detail::label_of;

// Columns the backend's sweep kernel takes at a time (see the sweep below):
// small enough that most of a block's updates are GEMMs, large enough that
// those GEMMs (inner dimension kSweepColumns) run near the machine's rate.
constexpr int64_t kSweepColumns = 16;

// perm[j] = the original column processed j-th: descending diag(H), ties by
// index (torch.argsort is not stable; a fixed tie-break keeps results
// independent of the sort implementation).
std::vector<int32_t> act_order_perm(const std::vector<float>& diag) {
  std::vector<int32_t> perm(diag.size());
  std::iota(perm.begin(), perm.end(), 0);
  std::stable_sort(perm.begin(), perm.end(),
                   [&](int32_t a, int32_t b) { return diag[a] > diag[b]; });
  return perm;
}

void permute_columns(std::vector<float>& w, int64_t rows, int64_t cols,
                     const std::vector<int32_t>& perm) {
  std::vector<float> row(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    float* wr = w.data() + r * cols;
    for (int64_t j = 0; j < cols; ++j) row[j] = wr[perm[j]];
    std::copy(row.begin(), row.end(), wr);
  }
}

// P H P^T for the permutation perm, with the diagonal taken from `diag`
// (original order: the dead-column fix is applied there).
std::vector<float> permute_symmetric(const float* h, int64_t n, const std::vector<int32_t>& perm,
                                     const std::vector<float>& diag) {
  std::vector<float> out(static_cast<size_t>(n * n));
  for (int64_t i = 0; i < n; ++i) {
    const float* src = h + static_cast<int64_t>(perm[i]) * n;
    float* dst = out.data() + i * n;
    for (int64_t j = 0; j < n; ++j) dst[j] = src[perm[j]];
    dst[i] = diag[perm[i]];
  }
  return out;
}

// Writes U (upper, H_damped^-1 = U^T U) into hinv and returns the damp_percent
// that worked: H += damp_percent * mean(diag H) * I, retried with a doubled
// damp_percent while the factorization fails (see GptqOptions). h is H in
// processing order except its diagonal, which is `diag`; h is not modified
// (its diagonal is replaced on the backend's copy, or on a host copy that a
// factorizer works on).
double damped_inverse_factor(Backend& be, const float* h, const std::vector<float>& diag, int64_t n,
                             const GptqOptions& opt, HostFactorizer* factorizer, float* hinv) {
  double mean_diag = 0;
  for (int64_t i = 0; i < n; ++i) mean_diag += diag[i];
  mean_diag /= static_cast<double>(n);

  std::vector<float> damped(static_cast<size_t>(n));
  Buffer ddev(be, n);
  double damp_percent = opt.damp_percent;
  for (int attempt = 0;; ++attempt) {
    const float damp = static_cast<float>(damp_percent * mean_diag);
    for (int64_t i = 0; i < n; ++i) damped[i] = diag[i] + damp;
    if (factorizer) {
      // The same damped matrix, built on the host; every member of the factorizer's group
      // gets the same answer, so all of them retry (or throw) together.
      std::vector<float> host(h, h + n * n);
      for (int64_t i = 0; i < n; ++i) host[i * n + i] = damped[i];
      if (factorizer->inverse_cholesky_upper(n, host.data())) {
        be.to_device(hinv, host.data(), n * n);
        return damp_percent;
      }
    } else {
      be.to_device(hinv, h, n * n);
      be.to_device(ddev.data(), damped.data(), n);
      be.copy_2d(n, 1, ddev.data(), 1, hinv, n + 1);  // the diagonal
      if (be.inverse_cholesky_upper(n, hinv)) return damp_percent;
    }
    if (attempt == opt.max_damp_retries)
      throw Error(fmt::format(
          "{}: the damped Hessian is not positive definite (Cholesky failed {} time(s), last "
          "damp_percent {}); the calibration inputs of this layer are degenerate",
          label_of(opt), attempt + 1, damp_percent));
    const double next = damp_percent > 0 ? 2 * damp_percent : kFirstRetryDamp;
    GPTQD_LOG_WARN(
        "{}: Cholesky of the damped Hessian failed with damp_percent {}; retrying with {}",
        label_of(opt), damp_percent, next);
    damp_percent = next;
  }
}

}  // namespace

void check_params_finite(const QuantizedLayer& q, const GptqOptions& opt) {
  // Finite weights can still give an infinite scale: (max - min) / maxq overflows fp32 when a
  // group holds both +3e38 and -3e38. Such a layer would be stored and exported as NaN.
  for (size_t i = 0; i < q.scales.size(); ++i) {
    if (std::isfinite(q.scales[i]) && std::isfinite(q.zeros[i])) continue;
    const int64_t group = static_cast<int64_t>(i) / q.rows, row = static_cast<int64_t>(i) % q.rows;
    throw Error(fmt::format(
        "{}: row {} group {}: the quantizer's scale is {} and zero {}: the weights of the group "
        "span more than fp32 holds (|max - min| > 3.4e38); the model's weights are damaged",
        label_of(opt), row, group, q.scales[i], q.zeros[i]));
  }
}

QuantizedLayer gptq_quantize(Backend& be, const float* w, int64_t rows, int64_t cols,
                             const float* h, const GptqOptions& opt, HostFactorizer* factorizer) {
  PhaseClock clock(be);  // each phase's seconds, the backend's queued work included
  gptq_detail::validate(opt, rows, cols);
  gptq_detail::check_finite(w, rows, cols, "weight", opt);
  gptq_detail::check_finite(h, cols, cols, "Hessian", opt,
                            ": the layer's calibration inputs hold NaN or Inf, or values whose "
                            "squares overflow fp32");
  const QuantGrid grid = gptq_detail::quant_grid(opt);
  const int64_t gs = gptq_detail::effective_group_size(opt, cols);
  const int64_t block = std::min(opt.block_size, cols);

  QuantizedLayer out;
  out.rows = rows;
  out.cols = cols;
  out.groups = gptq_detail::group_count(cols, gs);
  std::vector<float> wh(w, w + rows * cols);
  Buffer wdev(be, rows * cols);
  Buffer scales(be, out.groups * rows), zeros(be, out.groups * rows);

  // 1. group_size -1: one set of params from the whole W, taken BEFORE the dead
  //    columns are zeroed (the reference's find_params on the untouched W).
  if (gs == -1) {
    be.to_device(wdev.data(), wh.data(), rows * cols);
    gptq_detail::params_of_groups(be, wdev.data(), rows, cols, gs, grid, scales.data(),
                                  zeros.data());
  }

  // 2. Dead inputs: H_cc == 0 -> H_cc = 1, W[:, c] = 0. H itself is not copied:
  //    its diagonal is kept apart and replaces H's on the backend's copy.
  std::vector<float> diag(static_cast<size_t>(cols));
  for (int64_t c = 0; c < cols; ++c) {
    diag[c] = h[c * cols + c];
    if (diag[c] != 0.0f) continue;
    diag[c] = 1.0f;
    for (int64_t r = 0; r < rows; ++r) wh[r * cols + c] = 0.0f;
  }

  // 3. static_groups: every group's params from W after the dead zeroing and
  //    before the permutation, in original column order.
  const bool static_groups = opt.static_groups && gs != -1;
  if (static_groups) {
    be.to_device(wdev.data(), wh.data(), rows * cols);
    gptq_detail::params_of_groups(be, wdev.data(), rows, cols, gs, grid, scales.data(),
                                  zeros.data());
  }

  // 4. act_order: permute W's columns and H by descending diag(H).
  out.perm.resize(static_cast<size_t>(cols));
  std::iota(out.perm.begin(), out.perm.end(), 0);
  std::vector<float> hperm;
  const float* hproc = h;  // H in processing order (its diagonal: diag_proc)
  std::vector<float> diag_proc = diag;
  if (opt.act_order) {
    out.perm = act_order_perm(diag);
    permute_columns(wh, rows, cols, out.perm);
    hperm = permute_symmetric(h, cols, out.perm, diag);
    hproc = hperm.data();
    for (int64_t j = 0; j < cols; ++j) diag_proc[j] = diag[out.perm[j]];
  }
  be.to_device(wdev.data(), wh.data(), rows * cols);
  wh = std::vector<float>();

  out.seconds.prepare = clock.lap();

  // 5. Damping and U = upper Cholesky factor of H^-1.
  Buffer hinv(be, cols * cols);
  out.damp_used = damped_inverse_factor(be, hproc, diag_proc, cols, opt, factorizer, hinv.data());
  hperm = std::vector<float>();
  out.seconds.factor = clock.lap();

  // 6. The sweep, in blocks of `block` columns.
  ByteBuffer codes(be, rows * cols);
  Buffer err(be, rows * block), qblock(be, rows * block), loss(be, rows);
  std::vector<int32_t> col_group(static_cast<size_t>(block), 0);
  const int maxq = max_code(opt.bits);
  for (int64_t i1 = 0; i1 < cols; i1 += block) {
    const int64_t i2 = std::min(i1 + block, cols);
    const int64_t count = i2 - i1;
    if (gs != -1 && !static_groups) {
      // Params of each group that starts in this block, from W as it is at the
      // START of the block. The reference reads W[:, i1+i : i1+i+gs] (not the
      // in-block working copy W1) when it reaches column i1+i, and W only
      // changes between blocks, so a group starting mid-block sees its first
      // columns without the updates from this block's earlier columns. This is
      // reproduced exactly; it is also what lets every group's params be
      // computed here, before the backend runs the whole block.
      for (int64_t c = (i1 + gs - 1) / gs * gs; c < i2; c += gs) {
        const int64_t g = c / gs;
        be.quant_params(rows, std::min(gs, cols - c), wdev.data() + c, cols, grid,
                        scales.data() + g * rows, zeros.data() + g * rows);
      }
    }
    for (int64_t i = 0; i < count; ++i) {
      const int64_t j = i1 + i;
      if (gs == -1)
        col_group[i] = 0;
      else if (static_groups)
        col_group[i] = static_cast<int32_t>(out.perm[j] / gs);
      else
        col_group[i] = static_cast<int32_t>(j / gs);
    }

    // The block in sub-blocks of kSweepColumns: the backend's column sweep
    // (rank-1 updates, one column at a time) runs within a sub-block, and the
    // rest of the block gets each sub-block's errors in one GEMM. The same
    // arithmetic as the reference's rank-1 updates over the whole block,
    // summed in another order, and most of the in-block work at GEMM speed.
    for (int64_t j1 = i1; j1 < i2; j1 += kSweepColumns) {
      const int64_t j2 = std::min(j1 + kSweepColumns, i2);
      GptqBlock blk;
      blk.rows = rows;
      blk.count = j2 - j1;
      blk.w = wdev.data() + j1;
      blk.ldw = cols;
      blk.hinv = hinv.data() + j1 * cols + j1;
      blk.ldh = cols;
      blk.scale = scales.data();
      blk.zero = zeros.data();
      blk.col_group = col_group.data() + (j1 - i1);
      blk.maxq = maxq;
      blk.codes = codes.data() + j1;
      blk.ldc = cols;
      blk.qw = qblock.data() + (j1 - i1);
      blk.ldq = block;
      blk.err = err.data() + (j1 - i1);
      blk.lde = block;
      blk.loss = loss.data();
      be.gptq_block(blk);
      // W[:, j2:i2] -= Err[:, j1:j2] Hinv[j1:j2, j2:i2]
      if (j2 < i2)
        be.gemm(false, false, rows, i2 - j2, j2 - j1, -1.0f, err.data() + (j1 - i1), block,
                hinv.data() + j1 * cols + j2, cols, 1.0f, wdev.data() + j2, cols);
    }

    // W[:, i2:] -= Err1 Hinv[i1:i2, i2:]
    if (i2 < cols)
      be.gemm(false, false, rows, cols - i2, count, -1.0f, err.data(), block,
              hinv.data() + i1 * cols + i2, cols, 1.0f, wdev.data() + i2, cols);
  }

  out.seconds.sweep = clock.lap();

  // 7. Results in original column order.
  out.scales = scales.to_host();
  out.zeros = zeros.to_host();
  check_params_finite(out, opt);
  out.g_idx = gptq_detail::make_g_idx(out.perm, gs, opt.act_order, static_groups);
  gptq_detail::assemble(out, codes.to_host());
  for (float l : loss.to_host()) out.loss += l;
  out.seconds.finish = clock.lap();
  return out;
}

}  // namespace gptqd
