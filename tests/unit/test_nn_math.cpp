// kernels/nn_math.h, the per-element math that the CPU and CUDA backends share,
// on the host against its definitions in double: silu finite and right at both
// ends of the float range, relu, rope_pair a rotation, rms_inverse.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "kernels/nn_math.h"

namespace gptqd {
namespace {

// fp32 evaluation of a double-defined function: a few ulp.
constexpr double kRelTol = 4 * std::numeric_limits<float>::epsilon();

double silu_ref(double x) { return x / (1.0 + std::exp(-x)); }

TEST(NnMath, SiluMatchesItsDefinitionAndStaysFiniteAtTheEnds) {
  for (float x : {-80.0f, -20.0f, -3.5f, -1.0f, -1e-3f, 1e-3f, 0.5f, 1.0f, 2.0f, 7.0f, 30.0f}) {
    const double ref = silu_ref(x);
    EXPECT_NEAR(silu(x), ref, kRelTol * std::fabs(ref)) << x;
  }
  EXPECT_EQ(silu(0.0f), 0.0f);
  // exp(-x) overflows to inf for x < -88.7: the quotient is -0, not NaN.
  const float lowest = std::numeric_limits<float>::lowest();
  for (float x : {-89.0f, -100.0f, -1e4f, -1e30f, lowest}) {
    EXPECT_TRUE(std::isfinite(silu(x))) << x;
    EXPECT_EQ(silu(x), 0.0f) << x;
    EXPECT_TRUE(std::signbit(silu(x))) << x;
  }
  // exp(-x) underflows: silu(x) is x itself, up to FLT_MAX.
  const float largest = std::numeric_limits<float>::max();
  for (float x : {89.0f, 100.0f, 1e4f, 1e30f, largest}) EXPECT_EQ(silu(x), x) << x;
}

TEST(NnMath, Relu) {
  EXPECT_EQ(relu(2.5f), 2.5f);
  EXPECT_EQ(relu(-2.5f), 0.0f);
  EXPECT_FALSE(std::signbit(relu(-0.0f)));
  EXPECT_EQ(relu(std::numeric_limits<float>::quiet_NaN()), 0.0f);
  EXPECT_EQ(relu(std::numeric_limits<float>::infinity()), std::numeric_limits<float>::infinity());
}

TEST(NnMath, RopePairIsARotation) {
  // A quarter turn maps (1, 0) to (0, 1), as rotate_half does for the pair (x[i], x[i + half]).
  float x1 = 1.0f, x2 = 0.0f;
  rope_pair(x1, x2, 0.0f, 1.0f);
  EXPECT_EQ(x1, 0.0f);
  EXPECT_EQ(x2, 1.0f);

  std::mt19937 gen(7);
  std::uniform_real_distribution<float> value(-100.0f, 100.0f), angle(-50.0f, 50.0f);
  for (int trial = 0; trial < 1000; ++trial) {
    const float a = value(gen), b = value(gen), theta = angle(gen);
    const float c = std::cos(theta), s = std::sin(theta);
    float y1 = a, y2 = b;
    rope_pair(y1, y2, c, s);
    // The norm is preserved, up to the rounding of c, s and of the products.
    const double n0 = std::hypot(static_cast<double>(a), static_cast<double>(b));
    const double n1 = std::hypot(static_cast<double>(y1), static_cast<double>(y2));
    EXPECT_NEAR(n1, n0, kRelTol * n0) << a << "," << b << " at " << theta;
    // The right direction: the rotation by the same angle in double.
    EXPECT_NEAR(y1, a * static_cast<double>(c) - b * static_cast<double>(s), kRelTol * n0);
    EXPECT_NEAR(y2, b * static_cast<double>(c) + a * static_cast<double>(s), kRelTol * n0);
    // Turning back by -theta returns the pair.
    rope_pair(y1, y2, c, -s);
    EXPECT_NEAR(y1, a, 2 * kRelTol * n0);
    EXPECT_NEAR(y2, b, 2 * kRelTol * n0);
  }
}

TEST(NnMath, RmsInverse) {
  // A row of 300 values of magnitude 3: mean square 9, 1 / sqrt(9 + eps).
  EXPECT_NEAR(rms_inverse(300 * 9.0, 300, 1e-6f), 1.0 / std::sqrt(9.0 + 1e-6), kRelTol / 3);
  // eps keeps an all-zero row finite.
  EXPECT_FLOAT_EQ(rms_inverse(0.0, 64, 1e-6f), 1.0f / std::sqrt(1e-6f));
  // A sum of squares past FLT_MAX (kept in double) still gives a finite fp32 mean.
  const double big = 1e36;  // 4096 * big > FLT_MAX > big
  EXPECT_NEAR(rms_inverse(4096 * big, 4096, 1e-6f), 1.0 / std::sqrt(big), kRelTol * 1e-18);
}

}  // namespace
}  // namespace gptqd
