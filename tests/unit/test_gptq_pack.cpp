// Packing against a literal port of AutoGPTQ's QuantLinear.pack loops (the
// reference that defines the layout), for 2, 3, 4 and 8 bits.
#include <gtest/gtest.h>

#include <random>

#include "io/export/gptq_pack.h"
#include "base/check.h"

namespace gptqd {
namespace {

// AutoGPTQ's loop over rows of `intweight` [n, m] (uint32), packing along n.
std::vector<uint32_t> autogptq_pack_rows(const std::vector<uint32_t>& iw, int64_t n, int64_t m,
                                         int bits) {
  std::vector<uint32_t> q(static_cast<size_t>(n / 32 * bits * m), 0u);
  auto row_of = [&](int64_t r) { return &q[r * m]; };
  int64_t i = 0, row = 0;
  while (row < n / 32 * bits) {
    if (bits == 2 || bits == 4 || bits == 8) {
      for (int64_t j = i; j < i + 32 / bits; ++j)
        for (int64_t c = 0; c < m; ++c) row_of(row)[c] |= iw[j * m + c] << (bits * (j - i));
      i += 32 / bits;
      row += 1;
    } else {  // 3 bits
      for (int64_t j = i; j < i + 10; ++j)
        for (int64_t c = 0; c < m; ++c) row_of(row)[c] |= iw[j * m + c] << (3 * (j - i));
      i += 10;
      for (int64_t c = 0; c < m; ++c) row_of(row)[c] |= iw[i * m + c] << 30;
      row += 1;
      for (int64_t c = 0; c < m; ++c) row_of(row)[c] |= (iw[i * m + c] >> 2) & 1;
      i += 1;
      for (int64_t j = i; j < i + 10; ++j)
        for (int64_t c = 0; c < m; ++c) row_of(row)[c] |= iw[j * m + c] << (3 * (j - i) + 1);
      i += 10;
      for (int64_t c = 0; c < m; ++c) row_of(row)[c] |= iw[i * m + c] << 31;
      row += 1;
      for (int64_t c = 0; c < m; ++c) row_of(row)[c] |= (iw[i * m + c] >> 1) & 0x3;
      i += 1;
      for (int64_t j = i; j < i + 10; ++j)
        for (int64_t c = 0; c < m; ++c) row_of(row)[c] |= iw[j * m + c] << (3 * (j - i) + 2);
      i += 10;
      row += 1;
    }
  }
  return q;
}

class GptqPackTest : public ::testing::TestWithParam<int> {};

TEST_P(GptqPackTest, QweightMatchesAutoGptqLoop) {
  const int bits = GetParam();
  const int64_t out = 40, in = 96;
  std::mt19937 gen(bits);
  std::vector<uint8_t> codes(out * in);
  for (auto& c : codes) c = static_cast<uint8_t>(gen() % (1u << bits));
  // AutoGPTQ packs intweight = codes^T [in, out] along its rows.
  std::vector<uint32_t> iw(in * out);
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) iw[i * out + o] = codes[o * in + i];
  const std::vector<uint32_t> want = autogptq_pack_rows(iw, in, out, bits);
  const std::vector<int32_t> got = pack_qweight(codes, out, in, bits);
  ASSERT_EQ(got.size(), want.size());
  for (size_t k = 0; k < want.size(); ++k)
    ASSERT_EQ(static_cast<uint32_t>(got[k]), want[k]) << "word " << k;
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i)
      ASSERT_EQ(unpack_code(got, in, out, true, bits, i, o), codes[o * in + i]) << i << "," << o;
}

TEST_P(GptqPackTest, QzerosMatchAutoGptqLoopWithZeroMinusOne) {
  const int bits = GetParam();
  const int64_t groups = 3, out = 64;
  std::mt19937 gen(100 + bits);
  std::vector<float> zeros(groups * out);
  for (auto& z : zeros) z = static_cast<float>(1 + gen() % (1u << bits));  // 1..2^bits: zero-1 fits
  // AutoGPTQ: zeros -= 1, then packs along columns: the same loop on the transpose.
  std::vector<uint32_t> zt(out * groups);
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t o = 0; o < out; ++o)
      zt[o * groups + g] = static_cast<uint32_t>(zeros[g * out + o]) - 1;
  const std::vector<uint32_t> packed_t =
      autogptq_pack_rows(zt, out, groups, bits);                           // [out*bits/32, groups]
  const std::vector<int32_t> got = pack_qzeros(zeros, groups, out, bits);  // [groups, out*bits/32]
  const int64_t pc = out * bits / 32;
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t p = 0; p < pc; ++p)
      ASSERT_EQ(static_cast<uint32_t>(got[g * pc + p]), packed_t[p * groups + g]) << g << "," << p;
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t o = 0; o < out; ++o)
      ASSERT_EQ(unpack_code(got, groups, out, false, bits, g, o) + 1, zeros[g * out + o]);
}

INSTANTIATE_TEST_SUITE_P(Bits, GptqPackTest, ::testing::Values(2, 3, 4, 8));

TEST(GptqPack, FourBitWordByHand) {
  std::vector<uint8_t> codes(32);
  for (int i = 0; i < 32; ++i) codes[i] = static_cast<uint8_t>(i % 16);
  const std::vector<int32_t> q = pack_qweight(codes, 1, 32, 4);
  ASSERT_EQ(q.size(), 4u);
  EXPECT_EQ(static_cast<uint32_t>(q[0]), 0x76543210u);  // LSB first
  EXPECT_EQ(static_cast<uint32_t>(q[1]), 0xfedcba98u);
}

TEST(GptqPack, RejectsUnpackableShapes) {
  EXPECT_THROW(pack_qweight(std::vector<uint8_t>(40), 1, 40, 4), InputError);
  EXPECT_THROW(pack_qzeros(std::vector<float>(40, 1.0f), 1, 40, 3), InputError);
}

}  // namespace
}  // namespace gptqd
