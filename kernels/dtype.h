// Element types of tensors as stored in files (safetensors names) and the
// conversions to fp32 that the CPU path computes in.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/half.h"

namespace gptqd {

// F8_E4M3: e4m3fn (kernels/fp8.h), as DeepSeek-V3's weights; converted per element, without the
// block scales that give them their values (dequantize_fp8_blocks applies those).
enum class DType { F64, F32, F16, BF16, F8_E4M3, I64, I32, I16, I8, U8, BOOL };

// Bytes per element.
size_t dtype_size(DType t);
// safetensors spelling ("F32", "BF16", ...).
const char* dtype_name(DType t);
// Parses a safetensors dtype name; false if unknown.
bool parse_dtype(const std::string& s, DType* out);

// Converts n elements of type `t` at `src` (any alignment) to fp32.
// Integer types convert by value, F8_E4M3 by its code's value. Throws for BOOL.
void convert_to_f32(DType t, const void* src, size_t n, float* dst);

}  // namespace gptqd
