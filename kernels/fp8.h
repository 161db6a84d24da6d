// FP8 weights as DeepSeek-V3 and Kimi-K2 ship them: e4m3fn elements (safetensors dtype F8_E4M3)
// with one fp32 scale per 128 x 128 block (the tensor `<name>_scale_inv`, shape
// [ceil(rows / 128), ceil(cols / 128)]). Decoding is per element, shared by host and device.
#pragma once

#include <cstdint>
#include <string>

#include "kernels/half.h"

namespace gptqd {

// The value of an e4m3fn code (OCP FP8 E4M3, "fn": no infinities): 1 sign bit, 4 exponent bits
// with bias 7, 3 mantissa bits; exponent 0 holds the subnormals m/8 * 2^-6; S.1111.111 is NaN
// (the only NaN), so the largest finite magnitude is 448. Exact in fp32.
GPTQD_HD float e4m3fn_to_f32(uint8_t code) {
  const uint32_t sign = static_cast<uint32_t>(code & 0x80u) << 24;
  const uint32_t exp = (code >> 3) & 0xfu;
  const uint32_t mant = code & 0x7u;
  if (exp == 0xfu && mant == 0x7u) return bits_to_f32(sign | 0x7fc00000u);
  if (exp == 0) {
    // m/8 * 2^-6 = m * 2^-9: exact as a float product.
    const float v = static_cast<float>(mant) * 0.001953125f;
    return bits_to_f32(sign | f32_to_bits(v));
  }
  return bits_to_f32(sign | ((exp + 127u - 7u) << 23) | (mant << 20));
}

// The side of a scale block of DeepSeek-V3's FP8 weights (its config's
// quantization_config.weight_block_size [128, 128]).
constexpr int64_t kFp8Block = 128;

// out[r, c] = e4m3fn(w[r, c]) * scale_inv[r / block, c / block] for a row-major [rows, cols]
// weight, computed in fp32 and, when round_bf16, rounded to bf16 (nearest, ties to even): what
// DeepSeek-V3's own weight_dequant stores (its inference code runs in bf16; fp8_cast_bf16.py
// writes the same values). Throws InputError naming `what` when scale_inv's shape
// [scale_rows, scale_cols] is not [ceil(rows / block), ceil(cols / block)], or a scale is not
// finite and positive.
void dequantize_fp8_blocks(const uint8_t* w, int64_t rows, int64_t cols, const float* scale_inv,
                           int64_t scale_rows, int64_t scale_cols, int64_t block, bool round_bf16,
                           float* out, const std::string& what);

// The same with blocks of block_rows x block_cols (quantization_config.weight_block_size
// [rows, cols], as transformers' FineGrainedFP8Config reads it): scale_inv[r / block_rows,
// c / block_cols], the last block of each dimension cut short where block does not divide it
// (DeepSeek's weight_dequant masks the edge blocks so; e.g. kv_a_proj_with_mqa's 576 rows are 4
// full blocks and one of 64).
void dequantize_fp8_blocks(const uint8_t* w, int64_t rows, int64_t cols, const float* scale_inv,
                           int64_t scale_rows, int64_t scale_cols, int64_t block_rows,
                           int64_t block_cols, bool round_bf16, float* out,
                           const std::string& what);

}  // namespace gptqd
