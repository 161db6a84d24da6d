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
// along the output dimension, stored as zero - 1 (the v1 convention), masked to bits.
std::vector<int32_t> pack_qzeros(const std::vector<float>& zeros, int64_t groups, int64_t out,
                                 int bits);

// The inverse of pack_* for one value: element (r, c) of a [rows, cols] matrix packed
// along dimension `along_rows` (qweight) or columns (qzeros). Used by tests and eval.
int unpack_code(const std::vector<int32_t>& packed, int64_t rows, int64_t cols, bool along_rows,
                int bits, int64_t r, int64_t c);

}  // namespace gptqd
