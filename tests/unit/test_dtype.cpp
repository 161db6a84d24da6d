// DType names/sizes and the fp16/bf16 <-> fp32 conversions, checked against
// bit patterns from the IEEE 754 binary16 / bfloat16 tables and against
// references computed here from first principles (no shared code with half.h).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "base/check.h"
#include "kernels/dtype.h"
#include "kernels/half.h"

namespace gptqd {
namespace {

// binary16 value of bit pattern h: (-1)^s * 2^(e-15) * (1 + m/1024), or
// 2^-14 * m/1024 for e == 0. Computed in double with ldexp.
double f16_reference(uint16_t h) {
  const int s = h >> 15, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  double v;
  if (e == 0x1f) {
    v = m == 0 ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
  } else if (e == 0) {
    v = std::ldexp(m, -24);
  } else {
    v = std::ldexp(1024 + m, e - 25);
  }
  return s ? -v : v;
}

// Round-to-nearest-even of x to binary16 by exhaustive comparison with the
// neighbouring representable values: the definition, not an algorithm.
uint16_t f16_round_reference(float x) {
  if (std::isnan(x)) return 0x7e00;
  const uint16_t sign = std::signbit(x) ? 0x8000 : 0;
  const double a = std::fabs(static_cast<double>(x));
  // 65504 is the largest finite; the next "virtual" step would be 65536, so
  // anything >= the midpoint 65520 overflows to infinity (ties go to the even 65536).
  if (a >= 65520.0) return sign | 0x7c00;
  // Binary search for the largest finite magnitude <= a among 0x0000..0x7bff.
  uint16_t lo = 0, hi = 0x7bff;
  while (lo < hi) {
    const uint16_t mid = static_cast<uint16_t>((lo + hi + 1) / 2);
    if (f16_reference(mid) <= a) {
      lo = mid;
    } else {
      hi = static_cast<uint16_t>(mid - 1);
    }
  }
  if (lo == 0x7bff) return sign | lo;  // below 65520: rounds down to the max
  const double below = f16_reference(lo), above = f16_reference(static_cast<uint16_t>(lo + 1));
  const double dl = a - below, du = above - a;
  uint16_t r = lo;
  if (du < dl || (du == dl && (lo & 1))) r = static_cast<uint16_t>(lo + 1);
  return sign | r;
}

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round-to-nearest-even of x to bfloat16, by comparing with the two bfloat16
// neighbours (truncation and the next value up) in double.
uint16_t bf16_round_reference(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000);
  const uint32_t mag = u & 0x7fffffff;
  const uint16_t lo = static_cast<uint16_t>(mag >> 16);
  const double a = std::fabs(static_cast<double>(x));
  const double below = from_bits(static_cast<uint32_t>(lo) << 16);
  // Above the largest finite bfloat16 the next step is 2^128 (infinity).
  const double above =
      lo == 0x7f7f ? std::ldexp(1.0, 128) : from_bits(static_cast<uint32_t>(lo + 1) << 16);
  const double dl = a - below, du = above - a;
  uint16_t r = lo;
  if (du < dl || (du == dl && (lo & 1))) r = static_cast<uint16_t>(lo + 1);
  return sign | r;
}

TEST(DType, NamesSizesAndParsing) {
  struct Row {
    DType t;
    const char* name;
    size_t size;
  };
  const Row rows[] = {
      {DType::F64, "F64", 8},   {DType::F32, "F32", 4},        {DType::F16, "F16", 2},
      {DType::BF16, "BF16", 2}, {DType::I64, "I64", 8},        {DType::I32, "I32", 4},
      {DType::I16, "I16", 2},   {DType::I8, "I8", 1},          {DType::U8, "U8", 1},
      {DType::BOOL, "BOOL", 1}, {DType::F8_E4M3, "F8_E4M3", 1}};
  for (const Row& r : rows) {
    EXPECT_STREQ(dtype_name(r.t), r.name);
    EXPECT_EQ(dtype_size(r.t), r.size) << r.name;
    DType parsed = DType::U8;
    ASSERT_TRUE(parse_dtype(r.name, &parsed)) << r.name;
    EXPECT_EQ(parsed, r.t) << r.name;
  }
  DType untouched = DType::I8;
  for (const char* bad : {"f32", "F8_E5M2", "U16", "", "F32 ", "float32"}) {
    EXPECT_FALSE(parse_dtype(bad, &untouched)) << bad;
    EXPECT_EQ(untouched, DType::I8);
  }
}

TEST(DType, F16ToF32KnownPatterns) {
  // (bits, value) pairs from the binary16 tables.
  const std::pair<uint16_t, float> table[] = {
      {0x0000, 0.0f},
      {0x3c00, 1.0f},
      {0xc000, -2.0f},
      {0x3555, 0.333251953125f},
      {0x3bff, 0.99951171875f},
      {0x3c01, 1.0009765625f},
      {0x7bff, 65504.0f},                // largest normal
      {0x0400, 6.103515625e-05f},        // smallest normal 2^-14
      {0x03ff, 6.097555160522461e-05f},  // largest subnormal
      {0x0001, 5.960464477539063e-08f},  // smallest subnormal 2^-24
      {0x8001, -5.960464477539063e-08f},
      {0x0200, 3.0517578125e-05f},  // subnormal 2^-15
  };
  for (const auto& [bits, value] : table) {
    EXPECT_EQ(f16_to_f32(bits), value) << std::hex << bits;
  }
  EXPECT_TRUE(std::signbit(f16_to_f32(0x8000)) && f16_to_f32(0x8000) == 0.0f);
  EXPECT_EQ(f16_to_f32(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(f16_to_f32(0xfc00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7e00)));
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7c01)));  // signalling NaN must stay NaN, not become inf
  EXPECT_TRUE(std::isnan(f16_to_f32(0xfe00)));
}

TEST(DType, F16ToF32AllPatternsMatchDefinition) {
  std::vector<uint16_t> all(65536);
  for (uint32_t i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
  std::vector<float> out(all.size());
  convert_to_f32(DType::F16, all.data(), all.size(), out.data());
  for (uint32_t i = 0; i < 65536; ++i) {
    const double ref = f16_reference(static_cast<uint16_t>(i));
    if (std::isnan(ref)) {
      ASSERT_TRUE(std::isnan(out[i])) << std::hex << i;
    } else {
      ASSERT_EQ(static_cast<double>(out[i]), ref) << std::hex << i;
      ASSERT_EQ(std::signbit(out[i]), (i & 0x8000) != 0) << std::hex << i;
    }
  }
}

TEST(DType, F32ToF16RoundingTiesAndEdges) {
  // Exact representables round-trip.
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    ASSERT_EQ(f32_to_f16(f16_to_f32(static_cast<uint16_t>(h))), h) << std::hex << h;
    ASSERT_EQ(f32_to_f16(f16_to_f32(static_cast<uint16_t>(h | 0x8000))), h | 0x8000)
        << std::hex << h;
  }
  // Ties go to the even neighbour.
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // between 0x3c00 and 0x3c01
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // between 0x3c01 and 0x3c02
  EXPECT_EQ(f32_to_f16(std::nextafter(1.0f + std::ldexp(1.0f, -11), 2.0f)), 0x3c01);
  EXPECT_EQ(f32_to_f16(-(1.0f + std::ldexp(1.0f, -11))), 0xbc00);
  // Subnormal results: half of the smallest subnormal ties to 0, 1.5 units to 2.
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);
  EXPECT_EQ(f32_to_f16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(f32_to_f16(3 * std::ldexp(1.0f, -25)), 0x0002);
  EXPECT_EQ(f32_to_f16(5 * std::ldexp(1.0f, -25)), 0x0002);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -30)), 0x0000);
  EXPECT_EQ(f32_to_f16(-std::ldexp(1.0f, -30)), 0x8000);  // keeps the sign of zero
  // Largest subnormal + half a unit rounds into the smallest normal.
  EXPECT_EQ(f32_to_f16(std::ldexp(1023.5f, -24)), 0x0400);
  // Overflow: 65520 is the midpoint to the virtual 65536 and ties to infinity.
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65519.996f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);
  EXPECT_EQ(f32_to_f16(1e10f), 0x7c00);
  EXPECT_EQ(f32_to_f16(-1e10f), 0xfc00);
  EXPECT_EQ(f32_to_f16(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_EQ(f32_to_f16(-std::numeric_limits<float>::infinity()), 0xfc00);
  const uint16_t nan = f32_to_f16(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7c00, 0x7c00);
  EXPECT_NE(nan & 0x03ff, 0);
  EXPECT_NE(f32_to_f16(from_bits(0x7f800001u)) & 0x03ff, 0);  // low-bit NaN stays NaN
}

TEST(DType, F32ToF16MatchesDefinitionOnRandomAndMidpoints) {
  std::mt19937 gen(12345);
  std::uniform_int_distribution<uint32_t> bits;
  // Random float bit patterns concentrated on the f16 range (exponents 100..145).
  for (int i = 0; i < 200000; ++i) {
    uint32_t u = bits(gen);
    u = (u & 0x807fffffu) | ((100u + (u >> 23) % 46u) << 23);
    const float x = from_bits(u);
    ASSERT_EQ(f32_to_f16(x), f16_round_reference(x)) << std::hexfloat << x;
  }
  // Every midpoint between neighbouring f16 values, and one float ulp either side.
  for (uint32_t h = 0; h < 0x7bff; ++h) {
    const double mid =
        (f16_reference(static_cast<uint16_t>(h)) + f16_reference(static_cast<uint16_t>(h + 1))) / 2;
    const float m = static_cast<float>(mid);
    ASSERT_EQ(static_cast<double>(m), mid);  // midpoints are exact in fp32
    for (float x : {m, std::nextafter(m, 0.0f), std::nextafter(m, 1e9f)}) {
      ASSERT_EQ(f32_to_f16(x), f16_round_reference(x)) << std::hexfloat << x;
      ASSERT_EQ(f32_to_f16(-x), f16_round_reference(-x)) << std::hexfloat << -x;
    }
  }
}

TEST(DType, Bf16KnownPatternsAndRounding) {
  const std::pair<uint16_t, float> table[] = {
      {0x3f80, 1.0f},
      {0xc000, -2.0f},
      {0x3f00, 0.5f},
      {0x4049, 3.140625f},
      {0x7f7f, 3.3895313892515355e38f},   // largest finite
      {0x0080, 1.1754943508222875e-38f},  // smallest normal 2^-126
      {0x0001, 9.183549615799121e-41f},   // smallest subnormal 2^-133
  };
  for (const auto& [b, v] : table) {
    EXPECT_EQ(bf16_to_f32(b), v) << std::hex << b;
    EXPECT_EQ(f32_to_bf16(v), b) << v;
  }
  EXPECT_EQ(bf16_to_f32(0x7f80), std::numeric_limits<float>::infinity());
  EXPECT_EQ(bf16_to_f32(0xff80), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(bf16_to_f32(0x7fc0)));
  EXPECT_TRUE(std::isnan(bf16_to_f32(0x7f81)));
  // Ties to even.
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f808000u)), 0x3f80);  // 1 + 2^-8: between 0x3f80 and 0x3f81
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f818000u)), 0x3f82);
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f808001u)), 0x3f81);
  EXPECT_EQ(f32_to_bf16(from_bits(0x00008000u)), 0x0000);  // subnormal tie -> even 0
  EXPECT_EQ(f32_to_bf16(from_bits(0x00018000u)), 0x0002);
  EXPECT_EQ(f32_to_bf16(from_bits(0x80000001u)), 0x8000);
  // FLT_MAX lies above the midpoint between 0x7f7f and 2^128: rounds to infinity, as PyTorch does.
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::max()), 0x7f80);
  EXPECT_EQ(f32_to_bf16(-std::numeric_limits<float>::infinity()), 0xff80);
  // NaNs stay NaN, including those whose payload lives only in the dropped low bits.
  for (uint32_t n : {0x7fc00000u, 0x7f800001u, 0xff800001u, 0x7fffffffu}) {
    const uint16_t b = f32_to_bf16(from_bits(n));
    EXPECT_EQ(b & 0x7f80, 0x7f80) << std::hex << n;
    EXPECT_NE(b & 0x007f, 0) << std::hex << n;
  }
}

TEST(DType, Bf16MatchesDefinitionOnRandomPatterns) {
  std::mt19937 gen(777);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 300000; ++i) {
    const uint32_t u = bits(gen);
    const float x = from_bits(u);
    if (std::isnan(x)) continue;
    ASSERT_EQ(f32_to_bf16(x), bf16_round_reference(x)) << std::hex << u;
  }
  std::vector<uint16_t> all(65536);
  for (uint32_t i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
  std::vector<float> out(all.size());
  convert_to_f32(DType::BF16, all.data(), all.size(), out.data());
  for (uint32_t i = 0; i < 65536; ++i) {
    uint32_t got;
    std::memcpy(&got, &out[i], 4);
    ASSERT_EQ(got, i << 16) << std::hex << i;
  }
}

// Values placed at an odd offset, as tensors in a safetensors mapping may be.
template <typename T>
std::vector<float> convert_unaligned(DType t, const std::vector<T>& v) {
  std::vector<unsigned char> buf(1 + v.size() * sizeof(T));
  std::memcpy(buf.data() + 1, v.data(), v.size() * sizeof(T));
  std::vector<float> out(v.size(), -999.0f);
  convert_to_f32(t, buf.data() + 1, v.size(), out.data());
  return out;
}

TEST(DType, ConvertToF32ByValueUnaligned) {
  using V = std::vector<float>;
  EXPECT_EQ(convert_unaligned<double>(DType::F64, {1.5, -2.25, 1e-300, 0.1}),
            (V{1.5f, -2.25f, 0.0f, 0.1f}));
  EXPECT_EQ(convert_unaligned<float>(DType::F32, {1.5f, -0.0f, 3e38f}), (V{1.5f, -0.0f, 3e38f}));
  EXPECT_EQ(convert_unaligned<uint16_t>(DType::F16, {0x3c00, 0xc000, 0x0001}),
            (V{1.0f, -2.0f, 5.960464477539063e-08f}));
  EXPECT_EQ(convert_unaligned<uint16_t>(DType::BF16, {0x3f80, 0xc000}), (V{1.0f, -2.0f}));
  EXPECT_EQ(convert_unaligned<int64_t>(DType::I64, {-5, int64_t{1} << 40, 0}),
            (V{-5.0f, 1099511627776.0f, 0.0f}));
  EXPECT_EQ(convert_unaligned<int32_t>(DType::I32, {-7, 2147483647}), (V{-7.0f, 2147483648.0f}));
  EXPECT_EQ(convert_unaligned<int16_t>(DType::I16, {-32768, 32767}), (V{-32768.0f, 32767.0f}));
  EXPECT_EQ(convert_unaligned<int8_t>(DType::I8, {-128, 127, 0}), (V{-128.0f, 127.0f, 0.0f}));
  EXPECT_EQ(convert_unaligned<uint8_t>(DType::U8, {0, 255, 128}), (V{0.0f, 255.0f, 128.0f}));
  // Zero elements touch nothing.
  convert_to_f32(DType::F32, nullptr, 0, nullptr);
}

TEST(DType, BoolIsNotConvertible) {
  const uint8_t b[2] = {0, 1};
  float out[2];
  EXPECT_THROW(convert_to_f32(DType::BOOL, b, 2, out), Error);
}

}  // namespace
}  // namespace gptqd
