// Packing of quantized codes into the HF GPTQ layout (AutoGPTQ / transformers'
// "gptq" checkpoint format, v1): LSB-first int32 words. 2, 4 and 8 bits pack
// 32/bits values per word; 3 bits pack 32 values into 3 words, a value straddling
// word boundaries (AutoGPTQ's QuantLinear.pack).
#pragma once

#include <cstdint>
#include <vector>

namespace gptqd {

// qweight [in * bits / 32, out]: codes [out, in] (row-major, original column order)
// packed along the input dimension. Requires in % 32 == 0 (3 bits) or in % (32/bits) == 0.
std::vector<int32_t> pack_qweight(const std::vector<uint8_t>& codes, int64_t out, int64_t in,
                                  int bits);

// qzeros [groups, out * bits / 32]: zeros [groups, out] (integer-valued floats) packed
// along the output dimension. v1 (`gptq`, AutoGPTQ/transformers): stored as zero - 1, masked
// to bits (a zero of 0 cannot be stored: it reads back as 2^bits). v2 (`gptq_v2`, GPTQModel):
// stored as is; zeros must be <= 2^bits - 1.
enum class ZeroConvention { kV1, kV2 };
std::vector<int32_t> pack_qzeros(const std::vector<float>& zeros, int64_t groups, int64_t out,
                                 int bits, ZeroConvention conv = ZeroConvention::kV1);

// compressed-tensors' pack-quantized layout (compressed_tensors/compressors/pack_quantized/
// helpers.py, pack_to_int32): along the packed dimension every 32 values fill exactly `bits`
// int32 words, LSB-first, values straddling words (1..8 bits); the last words of a row are
// truncated to ceil(n * bits / 32). Values are stored unsigned (signed value + 2^(bits-1)).
// weight_packed [out, ceil(in * bits / 32)]: codes [out, in] packed along in. Our codes are
// unsigned already (code = signed value + 2^(bits-1) when the zero point is 2^(bits-1)).
std::vector<int32_t> pack_ct_weight(const std::vector<uint8_t>& codes, int64_t out, int64_t in,
                                    int bits);
// weight_zero_point [ceil(out * bits / 32), groups]: zeros [groups, out] (integers in
// [0, 2^bits - 1]) as the [out, groups] matrix compressed-tensors holds, packed along dim 0
// (packed_dim=0). The stored value is zero itself (= signed zero point + 2^(bits-1)).
std::vector<int32_t> pack_ct_zero_point(const std::vector<float>& zeros, int64_t groups,
                                        int64_t out, int bits);

// The inverse of pack_* for one value: element (r, c) of a [rows, cols] matrix packed
// along dimension `along_rows` (qweight) or columns (qzeros). Used by tests and eval.
int unpack_code(const std::vector<int32_t>& packed, int64_t rows, int64_t cols, bool along_rows,
                int bits, int64_t r, int64_t c);

}  // namespace gptqd
