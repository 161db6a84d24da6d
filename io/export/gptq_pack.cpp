#include "io/export/gptq_pack.h"

#include <algorithm>
#include <cmath>

#include "base/check.h"

namespace gptqd {
namespace {

// Bit position of value k (0-based) within a run of values packed LSB-first,
// 32 bits per word: value k occupies bits [k*bits, (k+1)*bits) of the stream. For
// 2/4/8 bits no value straddles a word; for 3 bits, values 10 and 21 of every 32
// do, exactly as AutoGPTQ lays them out (its loop is the same bit stream).
void put(uint32_t* words, int64_t k, int bits, uint32_t v) {
  const int64_t bit = k * bits;
  const int64_t w = bit / 32;
  const int shift = static_cast<int>(bit % 32);
  words[w] |= v << shift;
  if (shift + bits > 32) words[w + 1] |= v >> (32 - shift);
}

uint32_t get(const uint32_t* words, int64_t k, int bits) {
  const int64_t bit = k * bits;
  const int64_t w = bit / 32;
  const int shift = static_cast<int>(bit % 32);
  uint64_t both = words[w];
  if (shift + bits > 32) both |= static_cast<uint64_t>(words[w + 1]) << 32;
  return static_cast<uint32_t>((both >> shift) & ((1u << bits) - 1));
}

void check_bits(int bits) {
  GPTQD_CHECK(bits == 2 || bits == 3 || bits == 4 || bits == 8, "cannot pack {}-bit codes", bits);
}

}  // namespace

std::vector<int32_t> pack_qweight(const std::vector<uint8_t>& codes, int64_t out, int64_t in,
                                  int bits) {
  check_bits(bits);
  GPTQD_INPUT_CHECK(in % 32 == 0,
                    "GPTQ packing needs the input dimension to be a multiple of 32, got {}", in);
  GPTQD_CHECK(static_cast<int64_t>(codes.size()) == out * in, "codes size {} != {}x{}",
              codes.size(), out, in);
  const int64_t prow = in * bits / 32;
  std::vector<uint32_t> packed(static_cast<size_t>(prow * out), 0u);
  // Column c of qweight is the bit stream of output row c's codes along the input.
  std::vector<uint32_t> column(static_cast<size_t>(prow));
  for (int64_t o = 0; o < out; ++o) {
    std::fill(column.begin(), column.end(), 0u);
    for (int64_t i = 0; i < in; ++i) put(column.data(), i, bits, codes[o * in + i]);
    for (int64_t p = 0; p < prow; ++p) packed[p * out + o] = column[p];
  }
  return std::vector<int32_t>(packed.begin(), packed.end());
}

std::vector<int32_t> pack_qzeros(const std::vector<float>& zeros, int64_t groups, int64_t out,
                                 int bits, ZeroConvention conv) {
  check_bits(bits);
  GPTQD_INPUT_CHECK(out % 32 == 0,
                    "GPTQ packing needs the output dimension to be a multiple of 32, got {}", out);
  const int64_t pcol = out * bits / 32;
  const uint32_t mask = (1u << bits) - 1;
  std::vector<uint32_t> packed(static_cast<size_t>(groups * pcol), 0u);
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t o = 0; o < out; ++o) {
      const float z = zeros[g * out + o];
      const bool v1 = conv == ZeroConvention::kV1;
      GPTQD_CHECK(z == std::floor(z) && z >= 0 && z <= (v1 ? mask + 1 : mask),
                  "zero {} is not a {}-bit integer", z, bits);
      const uint32_t v = static_cast<uint32_t>(static_cast<int64_t>(z) - (v1 ? 1 : 0)) & mask;
      put(packed.data() + g * pcol, o, bits, v);
    }
  }
  return std::vector<int32_t>(packed.begin(), packed.end());
}

std::vector<int32_t> pack_ct_weight(const std::vector<uint8_t>& codes, int64_t out, int64_t in,
                                    int bits) {
  check_bits(bits);
  GPTQD_CHECK(static_cast<int64_t>(codes.size()) == out * in, "codes size {} != {}x{}",
              codes.size(), out, in);
  const int64_t words = (in * bits + 31) / 32;
  std::vector<uint32_t> packed(static_cast<size_t>(out * (words + 1)), 0u);  // +1: straddle room
  std::vector<int32_t> result(static_cast<size_t>(out * words));
  for (int64_t o = 0; o < out; ++o) {
    uint32_t* row = packed.data() + o * (words + 1);
    for (int64_t i = 0; i < in; ++i) put(row, i, bits, codes[o * in + i]);
    for (int64_t w = 0; w < words; ++w) result[o * words + w] = static_cast<int32_t>(row[w]);
  }
  return result;
}

std::vector<int32_t> pack_ct_zero_point(const std::vector<float>& zeros, int64_t groups,
                                        int64_t out, int bits) {
  check_bits(bits);
  const int64_t words = (out * bits + 31) / 32;
  const uint32_t mask = (1u << bits) - 1;
  // Column g of the result is the bit stream of zeros[g, 0..out).
  std::vector<uint32_t> column(static_cast<size_t>(words + 1));
  std::vector<int32_t> result(static_cast<size_t>(words * groups));
  for (int64_t g = 0; g < groups; ++g) {
    std::fill(column.begin(), column.end(), 0u);
    for (int64_t o = 0; o < out; ++o) {
      const float z = zeros[g * out + o];
      GPTQD_CHECK(z == std::floor(z) && z >= 0 && z <= mask, "zero {} is not a {}-bit integer", z,
                  bits);
      put(column.data(), o, bits, static_cast<uint32_t>(z));
    }
    for (int64_t w = 0; w < words; ++w) result[w * groups + g] = static_cast<int32_t>(column[w]);
  }
  return result;
}

int unpack_code(const std::vector<int32_t>& packed, int64_t rows, int64_t cols, bool along_rows,
                int bits, int64_t r, int64_t c) {
  const auto* words = reinterpret_cast<const uint32_t*>(packed.data());
  if (along_rows) {
    // qweight: column c holds a bit stream over r; word p of it is packed[p * cols + c].
    const int64_t bit = r * bits;
    const int64_t p = bit / 32;
    const int shift = static_cast<int>(bit % 32);
    uint64_t both = words[p * cols + c];
    if (shift + bits > 32) both |= static_cast<uint64_t>(words[(p + 1) * cols + c]) << 32;
    return static_cast<int>((both >> shift) & ((1u << bits) - 1));
  }
  return static_cast<int>(get(words + r * (cols * bits / 32), c, bits));
}

}  // namespace gptqd
