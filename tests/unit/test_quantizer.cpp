// The quantizer's edge cases (kernels/quant_math.h) and round to nearest
// (rtn_quantize) against definitions written here.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/backend.h"
#include "base/check.h"
#include "kernels/quant_math.h"
#include "tests/test_util.h"
#include "worker/gptq.h"

namespace gptqd {
namespace {

using test::random_vector;

TEST(Quantizer, TiesRoundToEven) {
  EXPECT_EQ(round_even(0.5f), 0.0f);
  EXPECT_EQ(round_even(1.5f), 2.0f);
  EXPECT_EQ(round_even(2.5f), 2.0f);
  EXPECT_EQ(round_even(-0.5f), 0.0f);
  EXPECT_EQ(round_even(-1.5f), -2.0f);
  EXPECT_EQ(round_even(-2.5f), -2.0f);
  EXPECT_EQ(round_even(2.4999998f), 2.0f);
  // A code on a tie: w / scale = 2.5 with zero 1 -> round(2.5) + 1 = 3.
  EXPECT_EQ(quant_code(2.5f, 1.0f, 1.0f, 15), 3.0f);
  EXPECT_EQ(quant_code(3.5f, 1.0f, 1.0f, 15), 5.0f);
}

TEST(Quantizer, CodesClampToTheGrid) {
  for (int bits : {2, 3, 4, 8}) {
    const int maxq = max_code(bits);
    EXPECT_EQ(maxq, (1 << bits) - 1);
    EXPECT_EQ(quant_code(1e6f, 0.1f, 3.0f, maxq), static_cast<float>(maxq));
    EXPECT_EQ(quant_code(-1e6f, 0.1f, 3.0f, maxq), 0.0f);
    EXPECT_EQ(fake_quant(1e6f, 0.1f, 3.0f, maxq), 0.1f * (maxq - 3.0f));
    EXPECT_EQ(fake_quant(-1e6f, 0.1f, 3.0f, maxq), 0.1f * (0.0f - 3.0f));
  }
}

TEST(Quantizer, SymmetricZeroIsMidGrid) {
  for (int bits : {2, 3, 4, 8}) {
    float s, z;
    quant_params_from_range(-1.0f, 0.5f, max_code(bits), true, &s, &z);
    EXPECT_EQ(z, static_cast<float>(1 << (bits - 1)));
    EXPECT_EQ(s, 2.0f / max_code(bits));
  }
}

// Every value inside its row's range is reproduced to within one step, and to
// within half a step unless it was clamped; zero is exactly representable.
class QuantizerBits : public ::testing::TestWithParam<std::tuple<int, bool>> {};

TEST_P(QuantizerBits, ErrorBoundsAndExactZero) {
  const auto [bits, sym] = GetParam();
  const int maxq = max_code(bits);
  const auto w = random_vector(4000, 100 + bits, -3.0f, 1.0f);
  for (int row = 0; row < 40; ++row) {
    const float* x = w.data() + row * 100;
    float xmin = 0, xmax = 0;
    for (int i = 0; i < 100; ++i) xmin = std::fmin(xmin, x[i]), xmax = std::fmax(xmax, x[i]);
    float s, z;
    quant_params_from_range(xmin, xmax, maxq, sym, &s, &z);
    EXPECT_EQ(z, std::nearbyint(z));
    EXPECT_GE(z, 0.0f);
    EXPECT_LE(z, static_cast<float>(maxq));
    EXPECT_EQ(fake_quant(0.0f, s, z, maxq), 0.0f);
    for (int i = 0; i < 100; ++i) {
      const float c = quant_code(x[i], s, z, maxq);
      ASSERT_GE(c, 0.0f);
      ASSERT_LE(c, static_cast<float>(maxq));
      const float err = std::fabs(fake_quant(x[i], s, z, maxq) - x[i]);
      EXPECT_LE(err, s * (1 + 1e-5f));
      if (c > 0 && c < maxq) {
        EXPECT_LE(err, s * (0.5f + 1e-5f));
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Quantizer, QuantizerBits,
                         ::testing::Combine(::testing::Values(2, 3, 4, 8), ::testing::Bool()));

std::unique_ptr<Backend> cpu() { return make_cpu_backend(1); }

// Round to nearest per row and group, by definition.
TEST(QuantizerRtn, MatchesDefinitionWithShortLastGroup) {
  auto be = cpu();
  const int64_t rows = 7, cols = 45;
  const auto w = random_vector(rows * cols, 110, -2.0f, 2.0f);
  for (int bits : {2, 3, 4, 8}) {
    for (int64_t gs : {int64_t{-1}, int64_t{16}, int64_t{45}, int64_t{64}}) {
      GptqOptions opt;
      opt.bits = bits;
      opt.group_size = gs;
      const QuantizedLayer q = rtn_quantize(*be, w.data(), rows, cols, opt);
      const int64_t g_len = gs == -1 ? cols : gs;
      const int64_t groups = (cols + g_len - 1) / g_len;
      ASSERT_EQ(q.groups, groups);
      ASSERT_EQ(q.scales.size(), static_cast<size_t>(groups * rows));
      for (int64_t c = 0; c < cols; ++c) {
        EXPECT_EQ(q.g_idx[c], c / g_len);
        EXPECT_EQ(q.perm[c], c);
      }
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t g = 0; g < groups; ++g) {
          const int64_t c0 = g * g_len, c1 = std::min(cols, c0 + g_len);
          float xmin = 0, xmax = 0;
          for (int64_t c = c0; c < c1; ++c)
            xmin = std::fmin(xmin, w[r * cols + c]), xmax = std::fmax(xmax, w[r * cols + c]);
          const float s = (xmax - xmin) / max_code(bits);
          const float z = std::nearbyint(-xmin / s);
          ASSERT_EQ(q.scales[g * rows + r], s);
          ASSERT_EQ(q.zeros[g * rows + r], z);
          for (int64_t c = c0; c < c1; ++c) {
            const float code =
                std::fmin(std::fmax(std::nearbyint(w[r * cols + c] / s) + z, 0.0f), max_code(bits));
            ASSERT_EQ(q.codes[r * cols + c], static_cast<uint8_t>(code));
            ASSERT_EQ(q.dequant[r * cols + c], s * (code - z));
          }
        }
      }
      EXPECT_EQ(q.loss, 0.0);
    }
  }
}

TEST(QuantizerRtn, RejectsBadOptionsAndNonFiniteWeights) {
  auto be = cpu();
  std::vector<float> w(12, 0.5f);
  GptqOptions opt;
  opt.label = "block 0 mlp.dense_h_to_4h";
  opt.bits = 5;
  EXPECT_THROW(rtn_quantize(*be, w.data(), 3, 4, opt), Error);
  opt.bits = 4;
  opt.group_size = 0;
  EXPECT_THROW(rtn_quantize(*be, w.data(), 3, 4, opt), Error);
  opt.group_size = -1;
  w[7] = INFINITY;
  try {
    rtn_quantize(*be, w.data(), 3, 4, opt);
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("block 0 mlp.dense_h_to_4h"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("[1, 3]"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace gptqd
