// The fast precision on the CPU backend (kernels/backend.h Precision::kFast): its rounding,
// and forward_gemm / xtx equal to the fp32 BLAS calls on explicitly bf16-rounded operands,
// bit for bit, while differing from the exact ones (the control that the setting does
// something). docs/numerics.md has the quality figures; tests/gpu/test_cuda_precision.cpp holds
// the CUDA twin to these.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <tuple>
#include <vector>

#include "coordinator/precision.h"
#include "kernels/backend.h"
#include "base/check.h"
#include "kernels/half.h"
#include "tests/test_util.h"

namespace gptqd {
namespace {

using test::random_vector;

std::vector<float> rounded(std::vector<float> v) {
  for (float& x : v) x = round_to_bf16(x);
  return v;
}

int64_t differing(const std::vector<float>& a, const std::vector<float>& b) {
  int64_t n = 0;
  for (size_t i = 0; i < a.size(); ++i) n += a[i] != b[i];
  return n;
}

TEST(Bf16Rounding, NearestEvenAndSpecialValues) {
  EXPECT_EQ(round_to_bf16(1.0f), 1.0f);
  // bf16 keeps 8 significand bits (7 stored): the spacing above 1 is 2^-7.
  EXPECT_EQ(round_to_bf16(1.0f + 0x1p-8f), 1.0f);                       // tie -> even (down)
  EXPECT_EQ(round_to_bf16(1.0f + 3 * 0x1p-8f), 1.0f + 0x1p-6f);         // tie -> even (up)
  EXPECT_EQ(round_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 1.0f + 0x1p-7f);  // above the tie
  EXPECT_EQ(round_to_bf16(-(1.0f + 0x1p-8f + 0x1p-20f)), -(1.0f + 0x1p-7f));
  EXPECT_EQ(round_to_bf16(0.0f), 0.0f);
  EXPECT_TRUE(std::signbit(round_to_bf16(-0.0f)));
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(round_to_bf16(inf), inf);
  EXPECT_EQ(round_to_bf16(-inf), -inf);
  EXPECT_TRUE(std::isnan(round_to_bf16(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_EQ(round_to_bf16(std::numeric_limits<float>::max()), inf);  // above bf16's largest
  // Idempotent, and within half a bf16 ulp of the input: bf16's unit roundoff is 2^-8.
  for (float x : random_vector(10000, 1, -100.0f, 100.0f)) {
    const float r = round_to_bf16(x);
    ASSERT_EQ(round_to_bf16(r), r) << x;
    ASSERT_LE(std::fabs(r - x), std::fabs(x) * 0x1p-8f) << x;
  }
}

TEST(Precision, ExactFromConstructionAndSettable) {
  auto be = make_cpu_backend(1);
  EXPECT_EQ(be->precision(), Precision::kExact);
  be->set_precision(Precision::kFast);
  EXPECT_EQ(be->precision(), Precision::kFast);
  EXPECT_STREQ(precision_name(Precision::kFast), "fast");
  EXPECT_STREQ(precision_name(Precision::kExact), "exact");
}

TEST(Precision, AutoIsFastOnAGpuOnly) {
  EXPECT_EQ(resolve_precision("auto", false), Precision::kExact);
  EXPECT_EQ(resolve_precision("auto", true), Precision::kFast);
  EXPECT_EQ(resolve_precision("exact", true), Precision::kExact);
  EXPECT_EQ(resolve_precision("fast", false), Precision::kFast);
  EXPECT_THROW(resolve_precision("bf16", false), InputError);
}

class FastForwardGemm : public ::testing::TestWithParam<std::tuple<bool, bool>> {};

// Odd shapes, padded leading dimensions, alpha and beta: kFast is gemm on the rounded A and B
// (the padding included in the copies, which the GEMM never reads), bit for bit; kExact is
// gemm itself; the two differ.
TEST_P(FastForwardGemm, IsSgemmOfBf16RoundedOperands) {
  const auto [ta, tb] = GetParam();
  const int64_t m = 37, n = 53, k = 71;
  const int64_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 5, ldc = n + 2;
  const auto a = random_vector((ta ? k : m) * lda, 10), b = random_vector((tb ? n : k) * ldb, 11);
  const auto c0 = random_vector(m * ldc, 12);
  const auto a16 = rounded(a), b16 = rounded(b);
  ASSERT_GT(differing(a, a16), 0);  // the inputs are not already bf16

  auto be = make_cpu_backend(2);
  std::vector<float> want = c0, exact = c0, plain = c0, fast = c0;
  be->gemm(ta, tb, m, n, k, 0.75f, a16.data(), lda, b16.data(), ldb, -0.5f, want.data(), ldc);
  be->gemm(ta, tb, m, n, k, 0.75f, a.data(), lda, b.data(), ldb, -0.5f, plain.data(), ldc);
  be->forward_gemm(ta, tb, m, n, k, 0.75f, a.data(), lda, b.data(), ldb, -0.5f, exact.data(), ldc);
  EXPECT_EQ(exact, plain) << "kExact forward_gemm is gemm";
  be->set_precision(Precision::kFast);
  be->forward_gemm(ta, tb, m, n, k, 0.75f, a.data(), lda, b.data(), ldb, -0.5f, fast.data(), ldc);
  EXPECT_EQ(fast, want) << "kFast forward_gemm is gemm of the rounded operands";
  // Control: rounding moved most outputs, each by about bf16's unit roundoff (2^-8) relative.
  EXPECT_GT(differing(fast, exact), m * n / 2);
  double err = 0, norm = 0;
  for (size_t i = 0; i < fast.size(); ++i) {
    err += (double(fast[i]) - exact[i]) * (double(fast[i]) - exact[i]);
    norm += double(exact[i]) * exact[i];
  }
  EXPECT_LT(err / norm, 1e-4) << "bf16 operands: about 2^-8 relative, not garbage";
  // gemm itself stays exact whatever the precision (the GPTQ sweep's updates use it).
  std::vector<float> still = c0;
  be->gemm(ta, tb, m, n, k, 0.75f, a.data(), lda, b.data(), ldb, -0.5f, still.data(), ldc);
  EXPECT_EQ(still, plain);
}

INSTANTIATE_TEST_SUITE_P(AllTransposes, FastForwardGemm,
                         ::testing::Combine(::testing::Bool(), ::testing::Bool()));

// The resident-bf16 weight (worker/model_weights.h): forward_gemm_bf16_b on to_bf16(B) is
// forward_gemm in kFast on B, bit for bit, for every transpose and padded strides; refused in
// kExact. Control: B's bits given as if they were fp32 (its bf16 widened wrongly) differ.
TEST_P(FastForwardGemm, Bf16WeightIsTheSameProduct) {
  const auto [ta, tb] = GetParam();
  const int64_t m = 29, n = 41, k = 67;
  const int64_t lda = (ta ? m : k) + 2, ldb = (tb ? k : n) + 3, ldc = n + 1;
  const auto a = random_vector((ta ? k : m) * lda, 30), b = random_vector((tb ? n : k) * ldb, 31);
  const auto c0 = random_vector(m * ldc, 32);
  auto be = make_cpu_backend(2);
  std::vector<uint16_t> b16(b.size());
  be->to_bf16(static_cast<int64_t>(b.size()), b.data(), b16.data());
  std::vector<float> c = c0;
  EXPECT_THROW(be->forward_gemm_bf16_b(ta, tb, m, n, k, 0.75f, a.data(), lda, b16.data(), ldb,
                                       -0.5f, c.data(), ldc),
               Error);
  be->set_precision(Precision::kFast);
  std::vector<float> want = c0;
  be->forward_gemm(ta, tb, m, n, k, 0.75f, a.data(), lda, b.data(), ldb, -0.5f, want.data(), ldc);
  be->forward_gemm_bf16_b(ta, tb, m, n, k, 0.75f, a.data(), lda, b16.data(), ldb, -0.5f, c.data(),
                          ldc);
  EXPECT_EQ(c, want);
  std::vector<uint16_t> shifted(b16.size());
  for (size_t i = 0; i < b16.size(); ++i) shifted[i] = static_cast<uint16_t>(b16[i] + 1);
  std::vector<float> control = c0;
  be->forward_gemm_bf16_b(ta, tb, m, n, k, 0.75f, a.data(), lda, shifted.data(), ldb, -0.5f,
                          control.data(), ldc);
  EXPECT_GT(differing(control, want), m * n / 2) << "one bf16 ulp off in B moves the outputs";
  // No inner dimension: C = beta C.
  std::vector<float> empty = c0;
  be->forward_gemm_bf16_b(ta, tb, m, n, 0, 0.75f, a.data(), lda, b16.data(), ldb, -0.5f,
                          empty.data(), ldc);
  for (int64_t r = 0; r < m; ++r)
    for (int64_t j = 0; j < n; ++j) ASSERT_EQ(empty[r * ldc + j], -0.5f * c0[r * ldc + j]);
}

TEST(FastBf16, ToBf16IsTheHostConversion) {
  std::vector<float> v = random_vector(1001, 40, -1e3f, 1e3f);
  v[0] = std::numeric_limits<float>::infinity();
  v[1] = -0.0f;
  v[2] = std::numeric_limits<float>::quiet_NaN();
  v[3] = 1.0f + 1.0f / 256.0f;  // a tie: rounds to even (1.0)
  v[4] = 3.4e38f;               // past the largest bf16 by more than half an ulp: Inf
  auto be = make_cpu_backend(2);
  std::vector<uint16_t> got(v.size());
  be->to_bf16(static_cast<int64_t>(v.size()), v.data(), got.data());
  for (size_t i = 0; i < v.size(); ++i) ASSERT_EQ(got[i], f32_to_bf16(v[i])) << i;
  EXPECT_EQ(bf16_to_f32(got[3]), 1.0f);
  EXPECT_TRUE(std::isinf(bf16_to_f32(got[4])));
  EXPECT_TRUE(std::isnan(bf16_to_f32(got[2])));
}

TEST(FastXtx, IsSyrkOfBf16RoundedX) {
  const int64_t n = 123, d = 45;
  const auto x = random_vector(n * d, 20), h0 = random_vector(d * d, 21);
  auto be = make_cpu_backend(2);
  std::vector<float> want = h0, exact = h0, fast = h0;
  be->xtx(n, d, rounded(x).data(), 0.3f, 0.7f, want.data());
  be->xtx(n, d, x.data(), 0.3f, 0.7f, exact.data());
  be->set_precision(Precision::kFast);
  be->xtx(n, d, x.data(), 0.3f, 0.7f, fast.data());
  EXPECT_EQ(fast, want);
  EXPECT_GT(differing(fast, exact), d * d / 2);  // control
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < i; ++j) ASSERT_EQ(fast[i * d + j], fast[j * d + i]) << i << "," << j;
  // No rows: H = alpha H exactly, as in kExact.
  std::vector<float> scaled = h0;
  be->xtx(0, d, x.data(), 0.5f, 1.0f, scaled.data());
  for (size_t i = 0; i < h0.size(); ++i) ASSERT_EQ(scaled[i], 0.5f * h0[i]) << i;
}

}  // namespace
}  // namespace gptqd
