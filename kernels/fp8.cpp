#include "kernels/fp8.h"

#include <cmath>

#include "base/check.h"

namespace gptqd {

void dequantize_fp8_blocks(const uint8_t* w, int64_t rows, int64_t cols, const float* scale_inv,
                           int64_t scale_rows, int64_t scale_cols, int64_t block, bool round_bf16,
                           float* out, const std::string& what) {
  dequantize_fp8_blocks(w, rows, cols, scale_inv, scale_rows, scale_cols, block, block, round_bf16,
                        out, what);
}

void dequantize_fp8_blocks(const uint8_t* w, int64_t rows, int64_t cols, const float* scale_inv,
                           int64_t scale_rows, int64_t scale_cols, int64_t block_rows,
                           int64_t block_cols, bool round_bf16, float* out,
                           const std::string& what) {
  GPTQD_CHECK(block_rows > 0 && block_cols > 0 && rows >= 0 && cols >= 0,
              "dequantize_fp8_blocks: bad arguments");
  const int64_t want_rows = (rows + block_rows - 1) / block_rows;
  const int64_t want_cols = (cols + block_cols - 1) / block_cols;
  GPTQD_INPUT_CHECK(scale_rows == want_rows && scale_cols == want_cols,
                    "{}: FP8 block scales have shape [{}, {}], but a [{}, {}] weight in blocks of "
                    "{} x {} needs [{}, {}]",
                    what, scale_rows, scale_cols, rows, cols, block_rows, block_cols, want_rows,
                    want_cols);
  for (int64_t i = 0; i < scale_rows * scale_cols; ++i)
    GPTQD_INPUT_CHECK(std::isfinite(scale_inv[i]) && scale_inv[i] > 0.0f,
                      "{}: FP8 block scale [{}, {}] is {}, not a finite positive number", what,
                      i / scale_cols, i % scale_cols, scale_inv[i]);
  for (int64_t r = 0; r < rows; ++r) {
    const float* srow = scale_inv + (r / block_rows) * scale_cols;
    const uint8_t* wrow = w + r * cols;
    float* orow = out + r * cols;
    // One fp32 product per element, as weight_dequant's `x.to(float32) * s`.
    for (int64_t c = 0; c < cols; ++c) {
      const float v = e4m3fn_to_f32(wrow[c]) * srow[c / block_cols];
      orow[c] = round_bf16 ? round_to_bf16(v) : v;
    }
  }
}

}  // namespace gptqd
