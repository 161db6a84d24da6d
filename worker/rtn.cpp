// rtn_quantize (the baseline beside every GPTQ result) and output_error (the
// measure both are compared with).
#include <numeric>

#include "kernels/buffer.h"
#include "base/check.h"
#include "kernels/quant_math.h"
#include "worker/gptq.h"
#include "worker/gptq_groups.h"

namespace gptqd {

QuantizedLayer rtn_quantize(Backend& be, const float* w, int64_t rows, int64_t cols,
                            const GptqOptions& opt) {
  gptq_detail::validate(opt, rows, cols);
  gptq_detail::check_finite(w, rows, cols, "weight", opt);
  const int64_t gs = gptq_detail::effective_group_size(opt, cols);

  QuantizedLayer out;
  out.rows = rows;
  out.cols = cols;
  out.groups = gptq_detail::group_count(cols, gs);
  out.perm.resize(static_cast<size_t>(cols));
  std::iota(out.perm.begin(), out.perm.end(), 0);
  out.g_idx = gptq_detail::make_g_idx(out.perm, gs, false, false);

  Buffer wdev(be, rows * cols);
  be.to_device(wdev.data(), w, rows * cols);
  Buffer scales(be, out.groups * rows), zeros(be, out.groups * rows);
  gptq_detail::params_of_groups(be, wdev.data(), rows, cols, gs, gptq_detail::quant_grid(opt),
                                scales.data(), zeros.data());
  ByteBuffer codes(be, rows * cols);
  be.quantize_rtn(rows, cols, wdev.data(), cols, scales.data(), zeros.data(), out.g_idx.data(),
                  max_code(opt.bits), codes.data(), cols, nullptr, 0);

  out.scales = scales.to_host();
  out.zeros = zeros.to_host();
  check_params_finite(out, opt);
  gptq_detail::assemble(out, codes.to_host());
  return out;
}

double output_error(Backend& be, const float* w, const float* q, int64_t rows, int64_t cols,
                    const float* h) {
  GPTQD_CHECK(rows >= 0 && cols >= 0, "output_error of a [{}, {}] matrix", rows, cols);
  if (rows == 0 || cols == 0) return 0.0;
  std::vector<float> diff(static_cast<size_t>(rows * cols));
  for (size_t i = 0; i < diff.size(); ++i) diff[i] = w[i] - q[i];
  Buffer d(be, diff), hd(be, cols * cols), dh(be, rows * cols);
  be.to_device(hd.data(), h, cols * cols);
  be.gemm(false, false, rows, cols, cols, 1.0f, d.data(), cols, hd.data(), cols, 0.0f, dh.data(),
          cols);
  const std::vector<float> prod = dh.to_host();
  double total = 0;
  for (size_t i = 0; i < diff.size(); ++i) total += static_cast<double>(diff[i]) * prod[i];
  return total;
}

double output_error_from_inputs(Backend& be, const float* w, const float* q, int64_t rows,
                                int64_t cols, const float* x, int64_t tokens, int64_t samples) {
  GPTQD_CHECK(rows >= 0 && cols >= 0 && tokens >= 0 && samples >= 1,
              "output_error_from_inputs of a [{}, {}] matrix, {} tokens, {} samples", rows, cols,
              tokens, samples);
  if (rows == 0 || cols == 0 || tokens == 0) return 0.0;
  std::vector<float> diff(static_cast<size_t>(rows * cols));
  for (size_t i = 0; i < diff.size(); ++i) diff[i] = w[i] - q[i];
  Buffer d(be, diff), xd(be, tokens * cols), e(be, rows * tokens);
  be.to_device(xd.data(), x, tokens * cols);
  // E = D X^T [rows, tokens]
  be.gemm(false, true, rows, tokens, cols, 1.0f, d.data(), cols, xd.data(), cols, 0.0f, e.data(),
          tokens);
  double total = 0;
  for (float v : e.to_host()) total += static_cast<double>(v) * v;
  return 2.0 * total / static_cast<double>(samples);
}

}  // namespace gptqd
