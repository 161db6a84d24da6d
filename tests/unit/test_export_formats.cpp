// The export formats' packing, read back with C++ ports of each format's own unpacking code
// (loop for loop, the tensor ops spelled out element-wise):
//   gptq (v1)          AutoGPTQ 0.7.1, auto_gptq/nn_modules/qlinear/qlinear_cuda_old.py,
//                      QuantLinear.forward's torch path (2/4/8 bits and the 3-bit branch):
//                      zeros = unpacked + 1, masked to bits for 2/4/8
//   gptq_v2            GPTQModel 7.7.0, gptqmodel/nn_modules/qlinear/__init__.py,
//                      PackableQuantLinear.dequantize_weight: zeros used as stored
//   compressed-tensors compressed-tensors 0.20.0, compressors/pack_quantized/helpers.py,
//                      unpack_from_int32 (the general path and the 4-bit byte path), offset
//                      2^(bits-1) subtracted; weight_zero_point unpacked with packed_dim=0
// Each packs random codes and zeros with io/export/gptq_pack.h and requires the port to give back
// exactly the checkpoint's codes and zeros, then the dequantized weights the checkpoint means.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "io/export/gptq_pack.h"

namespace gptqd {
namespace {

// ---- AutoGPTQ / GPTQModel (same bit layout; they differ in the zero convention) ----------

// wf for 2/4/8 bits: [0, bits, 2*bits, ...] (32/bits shifts); for 3 bits the 3x12 table.
const int kWf3[3][12] = {{0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 0},
                         {0, 1, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31},
                         {0, 2, 5, 8, 11, 14, 17, 20, 23, 26, 29, 0}};

// qweight [in*bits/32, out] -> weight [in, out] (before the zero/scale), as the torch code:
// 2/4/8: (qweight.unsqueeze(1).expand(-1, 32/bits, -1) >> wf.unsqueeze(-1)).to(int8/int16) & maxq
//        reshaped to [in, out]; 3: the 12-value expansion with the two straddling fix-ups and
//        cat([w[:,0,:11], w[:,1,1:12], w[:,2,1:11]]).
std::vector<int32_t> torch_unpack_qweight(const std::vector<int32_t>& qw, int64_t in, int64_t out,
                                          int bits) {
  std::vector<int32_t> w(static_cast<size_t>(in * out));
  if (bits != 3) {
    const int pf = 32 / bits, maxq = (1 << bits) - 1;
    for (int64_t r = 0; r < in / pf; ++r)
      for (int k = 0; k < pf; ++k)
        for (int64_t c = 0; c < out; ++c) {
          const int32_t shifted = qw[r * out + c] >> (bits * k);  // arithmetic, as torch's
          const int32_t narrowed =
              bits == 8 ? static_cast<int16_t>(shifted) : static_cast<int8_t>(shifted);
          w[(r * pf + k) * out + c] = narrowed & maxq;
        }
    return w;
  }
  for (int64_t r3 = 0; r3 < in / 32; ++r3)
    for (int64_t c = 0; c < out; ++c) {
      int32_t e[3][12];
      for (int j = 0; j < 3; ++j)
        for (int k = 0; k < 12; ++k) e[j][k] = (qw[(r3 * 3 + j) * out + c] >> kWf3[j][k]) & 0x7;
      e[0][10] = (e[0][10] & 0x3) | ((e[1][0] << 2) & 0x4);
      e[1][11] = (e[1][11] & 0x1) | ((e[2][0] << 1) & 0x6);
      int64_t i = r3 * 32;
      for (int k = 0; k < 11; ++k) w[(i++) * out + c] = e[0][k] & 0x7;
      for (int k = 1; k < 12; ++k) w[(i++) * out + c] = e[1][k] & 0x7;
      for (int k = 1; k < 11; ++k) w[(i++) * out + c] = e[2][k] & 0x7;
    }
  return w;
}

// qzeros [groups, out*bits/32] -> zeros [groups, out] as unpacked (before any +1).
// AutoGPTQ v1 (cuda_old): 2/4/8: ((qzeros.unsqueeze(2).expand(.., 32/bits) >> wf).to(int8/16)
// + 1) & maxq; 3: the 12-value expansion, & 7, then + 1 (no mask). GPTQModel v2: no + 1.
std::vector<int32_t> torch_unpack_qzeros(const std::vector<int32_t>& qz, int64_t groups,
                                         int64_t out, int bits, bool v1_plus_one) {
  std::vector<int32_t> z(static_cast<size_t>(groups * out));
  const int64_t pc = out * bits / 32;
  if (bits != 3) {
    const int pf = 32 / bits, maxq = (1 << bits) - 1;
    for (int64_t g = 0; g < groups; ++g)
      for (int64_t p = 0; p < pc; ++p)
        for (int k = 0; k < pf; ++k) {
          const int32_t shifted = qz[g * pc + p] >> (bits * k);
          int32_t v = bits == 8 ? static_cast<int16_t>(shifted) : static_cast<int8_t>(shifted);
          if (v1_plus_one) v = v + 1;
          z[g * out + p * pf + k] = v & maxq;
        }
    return z;
  }
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t p3 = 0; p3 < pc / 3; ++p3) {
      int32_t e[3][12];
      for (int j = 0; j < 3; ++j)
        for (int k = 0; k < 12; ++k) e[j][k] = qz[g * pc + p3 * 3 + j] >> kWf3[j][k];
      e[0][10] = (e[0][10] & 0x3) | ((e[1][0] << 2) & 0x4);
      e[1][11] = (e[1][11] & 0x1) | ((e[2][0] << 1) & 0x6);
      int64_t o = p3 * 32;
      auto put = [&](int32_t v) { z[g * out + (o++)] = (v & 0x7) + (v1_plus_one ? 1 : 0); };
      for (int k = 0; k < 11; ++k) put(e[0][k]);
      for (int k = 1; k < 12; ++k) put(e[1][k]);
      for (int k = 1; k < 11; ++k) put(e[2][k]);
    }
  return z;
}

// ---- compressed-tensors unpack_from_int32 ----------------------------------------------------

// value [rows, num_words] (packed_dim=1) -> int8 [rows, cols]: general path. Pads num_words to a
// multiple of num_bits, element i of each 32-group from bit i*num_bits: lo part
// (word[wi] >> off) & ((1 << lo) - 1), hi part (word[wi + 1] & ((1 << hi) - 1)) << lo, then
// minus the offset 2^(bits-1).
std::vector<int32_t> ct_unpack_general(const std::vector<int32_t>& value, int64_t rows,
                                       int64_t num_words, int64_t cols, int bits) {
  int64_t padded = num_words;
  if (padded % bits != 0) padded += bits - padded % bits;
  const int64_t ngroups = padded / bits;
  std::vector<int32_t> out(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<int32_t> words(static_cast<size_t>(padded), 0);
    for (int64_t w = 0; w < num_words; ++w) words[w] = value[r * num_words + w];
    for (int64_t g = 0; g < ngroups; ++g)
      for (int i = 0; i < 32; ++i) {
        const int64_t col = g * 32 + i;
        if (col >= cols) continue;
        const int start = i * bits, wi = start / 32, off = start % 32;
        const int lo = std::min(32 - off, bits);
        const int32_t* vg = &words[g * bits];
        int32_t v = (vg[wi] >> off) & ((1 << lo) - 1);  // torch >> on int32: arithmetic
        if (lo < bits) {
          const int hi = bits - lo;
          v |= (vg[wi + 1] & ((1 << hi) - 1)) << lo;
        }
        out[r * cols + col] = static_cast<int8_t>(v - (1 << (bits - 1)));
      }
  }
  return out;
}

// The 4-bit path: the words viewed as bytes (little-endian), low nibble then high nibble,
// viewed as int8 (nibbles fit), first `cols`, minus 8.
std::vector<int32_t> ct_unpack_4bit_bytes(const std::vector<int32_t>& value, int64_t rows,
                                          int64_t num_words, int64_t cols) {
  std::vector<int32_t> out(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    const auto* bytes = reinterpret_cast<const uint8_t*>(&value[r * num_words]);
    for (int64_t c = 0; c < cols; ++c) {
      const uint8_t b = bytes[c / 2];
      out[r * cols + c] = static_cast<int8_t>(c % 2 == 0 ? (b & 0xF) : (b >> 4)) - 8;
    }
  }
  return out;
}

// ---- tests -------------------------------------------------------------------------------

struct Layer {
  int64_t out, in, groups;
  std::vector<uint8_t> codes;  // [out, in]
  std::vector<float> zeros;    // [groups, out]
};

Layer random_layer(int bits, int64_t out, int64_t in, int64_t groups, int zmin, int zmax,
                   unsigned seed) {
  std::mt19937 gen(seed);
  Layer l{out, in, groups, std::vector<uint8_t>(out * in), std::vector<float>(groups * out)};
  for (auto& c : l.codes) c = static_cast<uint8_t>(gen() % (1u << bits));
  for (auto& z : l.zeros)
    z = static_cast<float>(zmin + static_cast<int>(gen() % (zmax - zmin + 1)));
  return l;
}

class ExportFormatsTest : public ::testing::TestWithParam<int> {};

TEST_P(ExportFormatsTest, GptqV1ReadByAutoGptq) {
  const int bits = GetParam();
  // Zeros 1..2^bits - 1 (and 2^(bits-1), the symmetric one): v1 stores zero - 1.
  const Layer l = random_layer(bits, 64, 96, 3, 1, (1 << bits) - 1, 10 + bits);
  const std::vector<int32_t> qw = pack_qweight(l.codes, l.out, l.in, bits);
  const std::vector<int32_t> qz = pack_qzeros(l.zeros, l.groups, l.out, bits, ZeroConvention::kV1);
  const std::vector<int32_t> w = torch_unpack_qweight(qw, l.in, l.out, bits);
  const std::vector<int32_t> z = torch_unpack_qzeros(qz, l.groups, l.out, bits, true);
  for (int64_t o = 0; o < l.out; ++o)
    for (int64_t i = 0; i < l.in; ++i) ASSERT_EQ(w[i * l.out + o], l.codes[o * l.in + i]);
  for (size_t k = 0; k < z.size(); ++k) ASSERT_EQ(z[k], l.zeros[k]) << k;
}

TEST_P(ExportFormatsTest, GptqV1ZeroOfZeroAsAutoGptqReadsIt) {
  // The documented v1 limit: a zero of 0 is stored as 2^bits - 1. AutoGPTQ's 2/4/8-bit torch
  // path masks after + 1 and so reads 0 back; its 3-bit path does not mask and reads 8.
  const int bits = GetParam();
  std::vector<float> zeros(32, 0.0f);
  const std::vector<int32_t> qz = pack_qzeros(zeros, 1, 32, bits, ZeroConvention::kV1);
  const std::vector<int32_t> z = torch_unpack_qzeros(qz, 1, 32, bits, true);
  for (int32_t v : z) EXPECT_EQ(v, bits == 3 ? 8 : 0);
}

TEST_P(ExportFormatsTest, GptqV2ReadByGptqModel) {
  const int bits = GetParam();
  const Layer l = random_layer(bits, 64, 128, 4, 0, (1 << bits) - 1, 20 + bits);  // 0 included
  const std::vector<int32_t> qw = pack_qweight(l.codes, l.out, l.in, bits);
  const std::vector<int32_t> qz = pack_qzeros(l.zeros, l.groups, l.out, bits, ZeroConvention::kV2);
  const std::vector<int32_t> w = torch_unpack_qweight(qw, l.in, l.out, bits);
  const std::vector<int32_t> z = torch_unpack_qzeros(qz, l.groups, l.out, bits, false);
  for (int64_t o = 0; o < l.out; ++o)
    for (int64_t i = 0; i < l.in; ++i) ASSERT_EQ(w[i * l.out + o], l.codes[o * l.in + i]);
  for (size_t k = 0; k < z.size(); ++k) ASSERT_EQ(z[k], l.zeros[k]) << k;
  // dequantize_weight: scales[g_idx] * (weight - zeros[g_idx]) is the checkpoint's
  // scale * (code - zero) with the zero as stored: no offset anywhere.
}

TEST_P(ExportFormatsTest, CompressedTensorsReadByUnpackFromInt32) {
  const int bits = GetParam();
  // in = 100: not a multiple of 32, the last words are truncated as pack_to_int32 does.
  const Layer l = random_layer(bits, 40, 100, 3, 0, (1 << bits) - 1, 30 + bits);
  const int64_t words = (l.in * bits + 31) / 32;
  const std::vector<int32_t> wp = pack_ct_weight(l.codes, l.out, l.in, bits);
  ASSERT_EQ(static_cast<int64_t>(wp.size()), l.out * words);
  const std::vector<int32_t> q = ct_unpack_general(wp, l.out, words, l.in, bits);
  const int off = 1 << (bits - 1);
  for (size_t k = 0; k < q.size(); ++k) ASSERT_EQ(q[k] + off, l.codes[k]) << k;
  if (bits == 4) {
    const std::vector<int32_t> q4 = ct_unpack_4bit_bytes(wp, l.out, words, l.in);
    for (size_t k = 0; k < q4.size(); ++k) ASSERT_EQ(q4[k] + off, l.codes[k]) << k;
  }
  // weight_zero_point: [out, groups] packed along dim 0 -> [ceil(out*bits/32), groups]; the
  // reader transposes, unpacks rows of the transpose, transposes back.
  const std::vector<int32_t> zp = pack_ct_zero_point(l.zeros, l.groups, l.out, bits);
  const int64_t zw = (l.out * bits + 31) / 32;
  ASSERT_EQ(static_cast<int64_t>(zp.size()), zw * l.groups);
  std::vector<int32_t> zpt(static_cast<size_t>(l.groups * zw));  // [groups, zw]
  for (int64_t w = 0; w < zw; ++w)
    for (int64_t g = 0; g < l.groups; ++g) zpt[g * zw + w] = zp[w * l.groups + g];
  const std::vector<int32_t> zs = ct_unpack_general(zpt, l.groups, zw, l.out, bits);  // [g, out]
  // Dequantization (x_q - zp) * s with x_q = code - off and zp = zero - off: code - zero.
  for (int64_t g = 0; g < l.groups; ++g)
    for (int64_t o = 0; o < l.out; ++o) ASSERT_EQ(zs[g * l.out + o] + off, l.zeros[g * l.out + o]);
}

INSTANTIATE_TEST_SUITE_P(Bits, ExportFormatsTest, ::testing::Values(2, 3, 4, 8));

TEST(ExportFormats, CompressedTensorsFourBitWordByHand) {
  std::vector<uint8_t> codes(8);
  for (int i = 0; i < 8; ++i) codes[i] = static_cast<uint8_t>(i + 8);  // signed 0..7
  const std::vector<int32_t> w = pack_ct_weight(codes, 1, 8, 4);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(static_cast<uint32_t>(w[0]), 0xfedcba98u);
}

TEST(ExportFormats, V2RefusesZeroBeyondBits) {
  EXPECT_ANY_THROW(pack_qzeros(std::vector<float>(32, 16.0f), 1, 32, 4, ZeroConvention::kV2));
  EXPECT_NO_THROW(pack_qzeros(std::vector<float>(32, 16.0f), 1, 32, 4, ZeroConvention::kV1));
}

}  // namespace
}  // namespace gptqd
