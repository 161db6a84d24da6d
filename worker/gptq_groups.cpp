#include "worker/gptq_groups.h"

#include <algorithm>
#include <cfloat>
#include <cmath>

#include "base/check.h"
#include "kernels/quant_math.h"

namespace gptqd::gptq_detail {

std::string label_of(const GptqOptions& opt) { return opt.label.empty() ? "layer" : opt.label; }

void validate(const GptqOptions& opt, int64_t rows, int64_t cols) {
  const std::string label = label_of(opt);
  auto fail = [&](const std::string& what) { throw Error(fmt::format("{}: {}", label, what)); };
  if (rows < 1 || cols < 1) fail(fmt::format("empty weight [{}, {}]", rows, cols));
  if (opt.bits != 2 && opt.bits != 3 && opt.bits != 4 && opt.bits != 8)
    fail(fmt::format("bits must be 2, 3, 4 or 8, got {}", opt.bits));
  if (opt.group_size != -1 && opt.group_size < 1)
    fail(fmt::format("group_size must be -1 or >= 1, got {}", opt.group_size));
  if (opt.block_size < 1) fail(fmt::format("block_size must be >= 1, got {}", opt.block_size));
  if (!(opt.damp_percent >= 0) || !std::isfinite(opt.damp_percent))
    fail(fmt::format("damp_percent must be finite and >= 0, got {}", opt.damp_percent));
  if (opt.max_damp_retries < 0)
    fail(fmt::format("max_damp_retries must be >= 0, got {}", opt.max_damp_retries));
}

void check_finite(const float* x, int64_t rows, int64_t cols, const char* what,
                  const GptqOptions& opt, const char* why) {
  for (int64_t r = 0; r < rows; ++r) {
    // A whole row without a branch (vectorized), then the culprit if any.
    const float* row = x + r * cols;
    bool finite = true;
    for (int64_t c = 0; c < cols; ++c) finite &= std::fabs(row[c]) <= FLT_MAX;
    if (finite) continue;
    for (int64_t c = 0; c < cols; ++c)
      if (!std::isfinite(row[c]))
        throw Error(fmt::format("{}: {} has a non-finite value {} at [{}, {}]{}", label_of(opt),
                                what, row[c], r, c, why));
  }
}

QuantGrid quant_grid(const GptqOptions& opt) {
  QuantGrid grid;
  grid.bits = opt.bits;
  grid.sym = opt.sym;
  grid.mse_clip = opt.mse_clip;
  return grid;
}

int64_t effective_group_size(const GptqOptions& opt, int64_t cols) {
  return opt.group_size == -1 ? -1 : std::min(opt.group_size, cols);
}

int64_t group_count(int64_t cols, int64_t group_size) {
  return group_size == -1 ? 1 : (cols + group_size - 1) / group_size;
}

void params_of_groups(Backend& be, const float* w, int64_t rows, int64_t cols, int64_t group_size,
                      const QuantGrid& grid, float* scale, float* zero) {
  const int64_t gs = group_size == -1 ? cols : group_size;
  for (int64_t g = 0; g * gs < cols; ++g) {
    const int64_t c0 = g * gs;
    be.quant_params(rows, std::min(gs, cols - c0), w + c0, cols, grid, scale + g * rows,
                    zero + g * rows);
  }
}

std::vector<int32_t> make_g_idx(const std::vector<int32_t>& perm, int64_t group_size,
                                bool act_order, bool static_groups) {
  const int64_t cols = static_cast<int64_t>(perm.size());
  std::vector<int32_t> g_idx(perm.size(), 0);
  if (group_size == -1) return g_idx;
  if (act_order && !static_groups) {
    // Groups are formed in processing order: the j-th processed column is in
    // group j / group_size.
    for (int64_t j = 0; j < cols; ++j) g_idx[perm[j]] = static_cast<int32_t>(j / group_size);
  } else {
    for (int64_t c = 0; c < cols; ++c) g_idx[c] = static_cast<int32_t>(c / group_size);
  }
  return g_idx;
}

void assemble(QuantizedLayer& out, const std::vector<uint8_t>& codes_proc) {
  const int64_t rows = out.rows, cols = out.cols;
  out.codes.assign(static_cast<size_t>(rows * cols), 0);
  out.dequant.assign(static_cast<size_t>(rows * cols), 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < cols; ++j) {
      const int64_t c = out.perm[j];
      const uint8_t code = codes_proc[r * cols + j];
      const int64_t gi = static_cast<int64_t>(out.g_idx[c]) * rows + r;
      out.codes[r * cols + c] = code;
      out.dequant[r * cols + c] =
          dequant_code(static_cast<float>(code), out.scales[gi], out.zeros[gi]);
    }
  }
}

}  // namespace gptqd::gptq_detail
