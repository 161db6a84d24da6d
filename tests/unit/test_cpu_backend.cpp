// Every op of the CPU backend against a plain loop written here (double
// precision where the op is numerical), with named tolerances.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "kernels/alibi.h"
#include "kernels/backend.h"
#include "kernels/buffer.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/quant_math.h"
#include "tests/naive_linalg.h"
#include "tests/test_util.h"

namespace gptqd {
namespace {

using test::random_vector;

// fp32 ops against double references: relative to the size of the terms summed.
constexpr double kGemmTol = 1e-5;
constexpr double kNormTol = 1e-5;
constexpr double kAttnTol = 2e-5;

std::unique_ptr<Backend> cpu() { return make_cpu_backend(2); }

double max_abs_diff(const std::vector<float>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

// C = alpha op(A) op(B) + beta C in double, every element by its definition.
std::vector<double> naive_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha,
                               const std::vector<float>& a, int64_t lda,
                               const std::vector<float>& b, int64_t ldb, double beta,
                               const std::vector<float>& c, int64_t ldc) {
  std::vector<double> out(c.begin(), c.end());
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t p = 0; p < k; ++p) {
        const double av = ta ? a[p * lda + i] : a[i * lda + p];
        const double bv = tb ? b[j * ldb + p] : b[p * ldb + j];
        s += av * bv;
      }
      out[i * ldc + j] = alpha * s + beta * c[i * ldc + j];
    }
  return out;
}

TEST(CpuBackendMemory, AllocIsZeroedAndCopiesRoundTrip) {
  auto be = cpu();
  EXPECT_EQ(be->name(), "cpu");
  Buffer buf(*be, 1000);
  for (float v : buf.to_host()) ASSERT_EQ(v, 0.0f);
  ByteBuffer bytes(*be, 77);
  for (uint8_t v : bytes.to_host()) ASSERT_EQ(v, 0);

  const auto host = random_vector(1000, 1);
  be->to_device(buf.data(), host.data(), 1000);
  EXPECT_EQ(buf.to_host(), host);

  Buffer other(*be, 1000);
  be->copy(other.data(), buf.data(), 1000);
  EXPECT_EQ(other.to_host(), host);

  be->fill(other.data(), 2.5f, 10);
  const auto filled = other.to_host();
  for (int i = 0; i < 10; ++i) EXPECT_EQ(filled[i], 2.5f);
  EXPECT_EQ(filled[10], host[10]);
}

TEST(CpuBackendMemory, Copy2dRespectsLeadingDimensions) {
  auto be = cpu();
  const auto src_h = random_vector(5 * 9, 2);
  Buffer src(*be, src_h), dst(*be, 5 * 7);
  be->copy_2d(5, 4, src.data() + 2, 9, dst.data() + 1, 7);
  const auto out = dst.to_host();
  for (int r = 0; r < 5; ++r)
    for (int c = 0; c < 7; ++c) {
      const float want = (c >= 1 && c < 5) ? src_h[r * 9 + 2 + (c - 1)] : 0.0f;
      EXPECT_EQ(out[r * 7 + c], want) << r << "," << c;
    }
}

class CpuBackendGemm : public ::testing::TestWithParam<std::tuple<bool, bool>> {};

TEST_P(CpuBackendGemm, MatchesNaiveLoopWithStridesAlphaBeta) {
  const auto [ta, tb] = GetParam();
  auto be = cpu();
  const int64_t m = 13, n = 17, k = 29;
  // Leading dimensions larger than the used width, as the GPTQ trailing update uses.
  const int64_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 2, ldc = n + 5;
  const int64_t a_rows = ta ? k : m, b_rows = tb ? n : k;
  const auto a_h = random_vector(a_rows * lda, 3);
  const auto b_h = random_vector(b_rows * ldb, 4);
  const auto c_h = random_vector(m * ldc, 5);
  Buffer a(*be, a_h), b(*be, b_h), c(*be, c_h);
  be->gemm(ta, tb, m, n, k, -0.75f, a.data(), lda, b.data(), ldb, 0.5f, c.data(), ldc);
  const auto want = naive_gemm(ta, tb, m, n, k, -0.75, a_h, lda, b_h, ldb, 0.5, c_h, ldc);
  EXPECT_LT(max_abs_diff(c.to_host(), want), kGemmTol * k);
}

INSTANTIATE_TEST_SUITE_P(CpuBackend, CpuBackendGemm,
                         ::testing::Combine(::testing::Bool(), ::testing::Bool()));

TEST(CpuBackendGemmEdge, EmptyInnerDimensionScalesC) {
  auto be = cpu();
  std::vector<float> c_h = {1, 2, 3, 4, 5, 6};
  Buffer c(*be, c_h);
  be->gemm(false, false, 2, 3, 0, 1.0f, nullptr, 1, nullptr, 3, 2.0f, c.data(), 3);
  EXPECT_EQ(c.to_host(), (std::vector<float>{2, 4, 6, 8, 10, 12}));
  // beta == 0 overwrites, even NaN.
  c_h[0] = std::numeric_limits<float>::quiet_NaN();
  be->to_device(c.data(), c_h.data(), 6);
  be->gemm(false, false, 2, 3, 0, 1.0f, nullptr, 1, nullptr, 3, 0.0f, c.data(), 3);
  EXPECT_EQ(c.to_host(), std::vector<float>(6, 0.0f));
}

TEST(CpuBackendXtx, AccumulatesBothTriangles) {
  auto be = cpu();
  const int64_t n = 37, d = 11;
  const auto x_h = random_vector(n * d, 6);
  auto h0 = random_vector(d * d, 7);
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < i; ++j) h0[i * d + j] = h0[j * d + i];  // symmetric start
  Buffer x(*be, x_h), h(*be, h0);
  be->xtx(n, d, x.data(), 0.25f, 1.5f, h.data());
  const auto got = h.to_host();
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < d; ++j) {
      double s = 0;
      for (int64_t t = 0; t < n; ++t) s += double(x_h[t * d + i]) * x_h[t * d + j];
      EXPECT_NEAR(got[i * d + j], 0.25 * h0[i * d + j] + 1.5 * s, kGemmTol * n) << i << "," << j;
      EXPECT_EQ(got[i * d + j], got[j * d + i]);
    }
}

TEST(CpuBackendXtx, AlphaZeroIgnoresOldContents) {
  auto be = cpu();
  const int64_t n = 4, d = 3;
  const auto x_h = random_vector(n * d, 8);
  Buffer x(*be, x_h), h(*be, std::vector<float>(d * d, std::numeric_limits<float>::quiet_NaN()));
  be->xtx(n, d, x.data(), 0.0f, 1.0f, h.data());
  for (float v : h.to_host()) EXPECT_TRUE(std::isfinite(v));
}

std::vector<float> random_spd(int64_t n, uint32_t seed, double ridge) {
  const auto x = random_vector(3 * n * n, seed);
  std::vector<float> h(n * n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t t = 0; t < 3 * n; ++t) s += double(x[t * n + i]) * x[t * n + j];
      h[i * n + j] = static_cast<float>(s / (3 * n) + (i == j ? ridge : 0.0));
    }
  return h;
}

TEST(CpuBackendCholesky, UpperFactorOfInverse) {
  auto be = cpu();
  const int64_t n = 48;
  const auto h_h = random_spd(n, 9, 0.1);
  Buffer h(*be, h_h);
  ASSERT_TRUE(be->inverse_cholesky_upper(n, h.data()));
  const auto u = h.to_host();
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_GT(u[i * n + i], 0.0f);
    for (int64_t j = 0; j < i; ++j) ASSERT_EQ(u[i * n + j], 0.0f) << "strictly lower not zeroed";
  }
  // U^T U H == I.
  double worst = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t k = 0; k < n; ++k) {
        double utu = 0;
        for (int64_t p = 0; p <= std::min(i, k); ++p) utu += double(u[p * n + i]) * u[p * n + k];
        s += utu * h_h[k * n + j];
      }
      worst = std::max(worst, std::fabs(s - (i == j ? 1.0 : 0.0)));
    }
  EXPECT_LT(worst, 1e-4);
}

// With condition number ~1e7 an fp32 factorization loses most digits; the
// fp64 path must leave only the final rounding to fp32.
TEST(CpuBackendCholesky, IllConditionedMatchesDoubleReference) {
  auto be = cpu();
  const int64_t n = 40;
  auto h_h = random_spd(n, 10, 0.0);
  // Make it nearly singular: blend column/row 1 into a near copy of 0.
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = h_h[i * n + 0];
  for (int64_t i = 0; i < n; ++i) {
    h_h[i * n + 1] = h_h[1 * n + i] = static_cast<float>(v[i]);
  }
  h_h[1 * n + 1] = static_cast<float>(v[0] * (1 + 1e-4));
  const auto want =
      test::naive_inverse_cholesky_upper(std::vector<double>(h_h.begin(), h_h.end()), n);
  Buffer h(*be, h_h);
  ASSERT_TRUE(be->inverse_cholesky_upper(n, h.data()));
  const auto got = h.to_host();
  double scale = 0, worst = 0;
  for (int64_t i = 0; i < n * n; ++i) scale = std::max(scale, std::fabs(want[i]));
  for (int64_t i = 0; i < n * n; ++i) worst = std::max(worst, std::fabs(got[i] - want[i]));
  EXPECT_LT(worst / scale, 1e-5);
}

TEST(CpuBackendCholesky, NotPositiveDefiniteReturnsFalse) {
  auto be = cpu();
  Buffer h(*be, std::vector<float>{1, 0, 0, 0, -1, 0, 0, 0, 1});
  EXPECT_FALSE(be->inverse_cholesky_upper(3, h.data()));
  Buffer z(*be, std::vector<float>(4, 0.0f));
  EXPECT_FALSE(be->inverse_cholesky_upper(2, z.data()));
}

TEST(CpuBackendLayerNorm, MatchesDoubleTwoPassIncludingAliasing) {
  auto be = cpu();
  const int64_t rows = 6, cols = 333;
  auto x_h = random_vector(rows * cols, 11, -3.0f, 3.0f);
  for (int64_t c = 0; c < cols; ++c) x_h[2 * cols + c] += 100.0f;  // a row with a large mean
  for (int64_t c = 0; c < cols; ++c) x_h[4 * cols + c] = 0.5f;     // a constant row: var 0
  const auto gamma = random_vector(cols, 12, 0.5f, 1.5f);
  const auto beta = random_vector(cols, 13);
  const float eps = 1e-5f;
  std::vector<double> want(rows * cols);
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (int64_t c = 0; c < cols; ++c) mean += x_h[r * cols + c];
    mean /= cols;
    for (int64_t c = 0; c < cols; ++c) var += std::pow(x_h[r * cols + c] - mean, 2);
    var /= cols;
    for (int64_t c = 0; c < cols; ++c)
      want[r * cols + c] = (x_h[r * cols + c] - mean) / std::sqrt(var + eps) * gamma[c] + beta[c];
  }
  Buffer x(*be, x_h), g(*be, gamma), b(*be, beta), y(*be, rows * cols);
  be->layer_norm(rows, cols, x.data(), g.data(), b.data(), eps, y.data());
  EXPECT_LT(max_abs_diff(y.to_host(), want), kNormTol);
  be->layer_norm(rows, cols, x.data(), g.data(), b.data(), eps, x.data());  // in place
  EXPECT_LT(max_abs_diff(x.to_host(), want), kNormTol);
}

TEST(CpuBackendElementwise, GeluMatchesDoubleFormula) {
  auto be = cpu();
  std::vector<float> x_h = random_vector(2001, 14, -8.0f, 8.0f);
  x_h.insert(x_h.end(), {0.0f, -0.0f, 1e-8f, -20.0f, 20.0f, 3.0f, -3.0f});
  Buffer x(*be, x_h);
  be->gelu(static_cast<int64_t>(x_h.size()), x.data());
  const auto got = x.to_host();
  for (size_t i = 0; i < x_h.size(); ++i) {
    const double v = x_h[i];
    const double want = v * 0.5 * (1.0 + std::tanh(0.79788456 * v * (1.0 + 0.044715 * v * v)));
    EXPECT_NEAR(got[i], want, 1e-6 * std::max(1.0, std::fabs(v))) << "x = " << v;
  }
}

TEST(CpuBackendElementwise, AddAndAddBias) {
  auto be = cpu();
  const auto a_h = random_vector(12, 15), y_h = random_vector(12, 16), bias = random_vector(4, 17);
  Buffer a(*be, a_h), y(*be, y_h), b(*be, bias);
  be->add(12, a.data(), y.data());
  auto got = y.to_host();
  for (int i = 0; i < 12; ++i) EXPECT_EQ(got[i], y_h[i] + a_h[i]);
  be->add_bias(3, 4, b.data(), y.data());
  const auto got2 = y.to_host();
  for (int i = 0; i < 12; ++i) EXPECT_EQ(got2[i], got[i] + bias[i % 4]);
}

// The DESIGN.md §5 formula, in double, independent of alibi.h.
double design_slope(int head0, int n_head) {
  int p = 1;
  while (p * 2 <= n_head) p *= 2;
  const int i = head0 + 1;
  if (i <= p) return std::pow(2.0, -8.0 * i / p);
  const int k = 2 * (i - p) - 1;
  return std::pow(2.0, -4.0 * k / p);
}

TEST(CpuBackendAlibi, SlopesFollowTheDesignFormula) {
  for (int n_head : {1, 2, 6, 8, 12, 16, 112}) {
    for (int h = 0; h < n_head; ++h)
      EXPECT_NEAR(alibi_slope(h, n_head), design_slope(h, n_head), 1e-6 * design_slope(h, n_head))
          << "head " << h << " of " << n_head;
  }
  // Hand values: 8 heads -> 1/2, 1/4, ..., 1/256; 12 heads add 2^-0.5, 2^-1.5, ...
  EXPECT_EQ(alibi_slope(0, 8), 0.5f);
  EXPECT_EQ(alibi_slope(7, 8), 1.0f / 256);
  EXPECT_NEAR(alibi_slope(8, 12), std::pow(2.0, -0.5), 1e-7);
  EXPECT_NEAR(alibi_slope(11, 12), std::pow(2.0, -3.5), 1e-7);
}

std::vector<double> naive_attention(int64_t batch, int64_t seq, int64_t n_head, int64_t hd,
                                    const std::vector<float>& qkv) {
  const int64_t ld = n_head * 3 * hd;
  std::vector<double> ctx(batch * seq * n_head * hd);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < n_head; ++h) {
      const double slope = design_slope(static_cast<int>(h), static_cast<int>(n_head));
      auto at = [&](int64_t t, int which, int64_t d) {
        return double(qkv[(b * seq + t) * ld + h * 3 * hd + which * hd + d]);
      };
      for (int64_t i = 0; i < seq; ++i) {
        std::vector<double> s(i + 1);
        double mx = -1e300;
        for (int64_t j = 0; j <= i; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < hd; ++d) dot += at(i, 0, d) * at(j, 1, d);
          s[j] = dot / std::sqrt(double(hd)) + slope * j;
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        for (auto& v : s) sum += (v = std::exp(v - mx));
        for (int64_t d = 0; d < hd; ++d) {
          double acc = 0;
          for (int64_t j = 0; j <= i; ++j) acc += s[j] / sum * at(j, 2, d);
          ctx[(b * seq + i) * n_head * hd + h * hd + d] = acc;
        }
      }
    }
  return ctx;
}

TEST(CpuBackendAttention, MatchesNaiveCausalAlibi) {
  auto be = cpu();
  // 6 heads: 4 power-of-two slopes plus 2 interleaved ones.
  const int64_t batch = 2, seq = 19, n_head = 6, hd = 5;
  const auto qkv_h = random_vector(batch * seq * n_head * 3 * hd, 18, -2.0f, 2.0f);
  Buffer qkv(*be, qkv_h), ctx(*be, batch * seq * n_head * hd);
  be->alibi_attention(batch, seq, n_head, hd, qkv.data(), ctx.data());
  const auto got = ctx.to_host();
  EXPECT_LT(max_abs_diff(got, naive_attention(batch, seq, n_head, hd, qkv_h)), kAttnTol);
  // The first token of each sequence attends only to itself: ctx == v exactly-ish.
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < n_head; ++h)
      for (int64_t d = 0; d < hd; ++d)
        EXPECT_NEAR(got[(b * seq) * n_head * hd + h * hd + d],
                    qkv_h[(b * seq) * n_head * 3 * hd + h * 3 * hd + 2 * hd + d], 1e-6);
}

TEST(CpuBackendAttention, LargeScoresStayFinite) {
  auto be = cpu();
  const int64_t batch = 1, seq = 64, n_head = 2, hd = 8;
  const auto qkv_h = random_vector(batch * seq * n_head * 3 * hd, 19, -40.0f, 40.0f);
  Buffer qkv(*be, qkv_h), ctx(*be, batch * seq * n_head * hd);
  be->alibi_attention(batch, seq, n_head, hd, qkv.data(), ctx.data());
  const auto got = ctx.to_host();
  for (float v : got) ASSERT_TRUE(std::isfinite(v));
  const auto want = naive_attention(batch, seq, n_head, hd, qkv_h);
  EXPECT_LT(max_abs_diff(got, want), 1e-3);  // values up to 40: relative ~2e-5
}

// quant.py's find_params for one row, written out again.
void ref_params(const float* w, int64_t n, int bits, bool sym, float* scale, float* zero) {
  const float maxq = static_cast<float>((1 << bits) - 1);
  float xmin = 0, xmax = 0;
  for (int64_t i = 0; i < n; ++i) {
    xmin = std::min(xmin, w[i]);
    xmax = std::max(xmax, w[i]);
  }
  if (sym) {
    xmax = std::max(std::fabs(xmin), xmax);
    if (xmin < 0) xmin = -xmax;
  }
  if (xmin == 0 && xmax == 0) {
    xmin = -1;
    xmax = 1;
  }
  *scale = (xmax - xmin) / maxq;
  *zero = sym ? (maxq + 1) / 2 : std::nearbyint(-xmin / *scale);
}

TEST(CpuBackendQuantParams, HandValues) {
  auto be = cpu();
  // rows: mixed signs, all zero, all positive, all negative
  const std::vector<float> w_h = {-1, 0.5f, 2, 0, 0, 0, 1, 2, 3, -4, -2, -1};
  Buffer w(*be, w_h), s(*be, 4), z(*be, 4);
  QuantGrid grid;
  grid.bits = 2;  // maxq 3
  be->quant_params(4, 3, w.data(), 3, grid, s.data(), z.data());
  EXPECT_EQ(s.to_host(), (std::vector<float>{1.0f, 2.0f / 3, 1.0f, 4.0f / 3}));
  // zero = round(-xmin / scale): 1, round(1.5) = 2 (to even), 0, round(3) = 3
  EXPECT_EQ(z.to_host(), (std::vector<float>{1, 2, 0, 3}));
  grid.sym = true;
  be->quant_params(4, 3, w.data(), 3, grid, s.data(), z.data());
  // sym: xmax = max(|xmin|, xmax), xmin = -xmax when xmin < 0; an all-positive
  // row keeps xmin = 0 (the reference's behaviour).
  EXPECT_EQ(s.to_host(), (std::vector<float>{4.0f / 3, 2.0f / 3, 1.0f, 8.0f / 3}));
  EXPECT_EQ(z.to_host(), (std::vector<float>{2, 2, 2, 2}));
}

class CpuBackendQuantParamsBits : public ::testing::TestWithParam<std::tuple<int, bool>> {};

TEST_P(CpuBackendQuantParamsBits, MatchesReferenceWithStride) {
  const auto [bits, sym] = GetParam();
  auto be = cpu();
  const int64_t rows = 9, cols = 50, ldw = 64;
  auto w_h = random_vector(rows * ldw, 20 + bits, -2.0f, 1.0f);
  for (int64_t c = 0; c < cols; ++c) w_h[3 * ldw + c] = 0.0f;  // all-zero row
  for (int64_t c = 0; c < cols; ++c) w_h[5 * ldw + c] = std::fabs(w_h[5 * ldw + c]);
  Buffer w(*be, w_h), s(*be, rows), z(*be, rows);
  QuantGrid grid;
  grid.bits = bits;
  grid.sym = sym;
  be->quant_params(rows, cols, w.data(), ldw, grid, s.data(), z.data());
  const auto sg = s.to_host(), zg = z.to_host();
  for (int64_t r = 0; r < rows; ++r) {
    float rs, rz;
    ref_params(w_h.data() + r * ldw, cols, bits, sym, &rs, &rz);
    EXPECT_EQ(sg[r], rs) << "row " << r;
    EXPECT_EQ(zg[r], rz) << "row " << r;
  }
}

INSTANTIATE_TEST_SUITE_P(CpuBackend, CpuBackendQuantParamsBits,
                         ::testing::Combine(::testing::Values(2, 3, 4, 8), ::testing::Bool()));

double clip_err(const float* w, int64_t n, float s, float z, int maxq, double norm) {
  double e = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double code = std::clamp(std::nearbyint(double(w[i]) / s) + z, 0.0, double(maxq));
    e += std::pow(std::fabs(s * (code - z) - w[i]), norm);
  }
  return e;
}

TEST(CpuBackendQuantParams, MseClipFindsTheBestGridPoint) {
  auto be = cpu();
  const int64_t rows = 7, cols = 128;
  auto w_h = random_vector(rows * cols, 30, -1.0f, 1.0f);
  // Heavy-tailed rows: an outlier makes clipping worthwhile.
  for (int64_t r = 0; r < rows; ++r) w_h[r * cols + r] = 6.0f * (r % 2 ? 1 : -1);
  for (int64_t c = 0; c < cols; ++c) w_h[6 * cols + c] = 0.0f;  // all-zero row
  for (bool sym : {false, true}) {
    QuantGrid grid;
    grid.bits = 3;
    grid.sym = sym;
    grid.mse_clip = true;
    const int maxq = 7;
    Buffer w(*be, w_h), s(*be, rows), z(*be, rows);
    be->quant_params(rows, cols, w.data(), cols, grid, s.data(), z.data());
    const auto sg = s.to_host(), zg = z.to_host();
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = w_h.data() + r * cols;
      float s0, z0;
      ref_params(row, cols, 3, sym, &s0, &z0);
      // The grid of the reference: p = 1 - i/100 for i < 80, params rebuilt from
      // the shrunk folded range; the chosen one must be (one of) the best.
      float xmin = 0, xmax = 0;
      for (int64_t c = 0; c < cols; ++c)
        xmin = std::min(xmin, row[c]), xmax = std::max(xmax, row[c]);
      if (sym) {
        xmax = std::max(std::fabs(xmin), xmax);
        if (xmin < 0) xmin = -xmax;
      }
      if (xmin == 0 && xmax == 0) xmin = -1, xmax = 1;
      double best = 1e300;
      for (int i = 0; i < 80; ++i) {
        const float p = static_cast<float>(1.0 - i / 100.0);
        const float sc = (p * xmax - p * xmin) / maxq;
        const float zc = sym ? 4.0f : std::nearbyint(-(p * xmin) / sc);
        best = std::min(best, clip_err(row, cols, sc, zc, maxq, 2.4));
      }
      const double chosen = clip_err(row, cols, sg[r], zg[r], maxq, 2.4);
      EXPECT_LE(chosen, best * (1 + 1e-9)) << "row " << r << " sym " << sym;
      EXPECT_LE(chosen, clip_err(row, cols, s0, z0, maxq, 2.4) * (1 + 1e-9));
      if (r < 6) {
        EXPECT_LT(sg[r], s0) << "the outlier row should be clipped";
      }
      if (sym) {
        EXPECT_EQ(zg[r], 4.0f);
      }
    }
  }
}

TEST(CpuBackendQuantize, RtnMatchesNaiveWithGroups) {
  auto be = cpu();
  const int64_t rows = 5, cols = 23, ldw = 25, ldc = 24, ldq = 26, groups = 3;
  const int maxq = 7;
  const auto w_h = random_vector(rows * ldw, 40, -1.5f, 1.5f);
  const auto s_h = random_vector(groups * rows, 41, 0.1f, 0.3f);
  std::vector<float> z_h(groups * rows);
  for (size_t i = 0; i < z_h.size(); ++i) z_h[i] = static_cast<float>(i % 8);
  std::vector<int32_t> col_group(cols);
  for (int64_t c = 0; c < cols; ++c) col_group[c] = static_cast<int32_t>((c * 7) % groups);
  Buffer w(*be, w_h), s(*be, s_h), z(*be, z_h), q(*be, rows * ldq);
  ByteBuffer codes(*be, rows * ldc);
  be->quantize_rtn(rows, cols, w.data(), ldw, s.data(), z.data(), col_group.data(), maxq,
                   codes.data(), ldc, q.data(), ldq);
  const auto cg = codes.to_host();
  const auto qg = q.to_host();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const float sc = s_h[col_group[c] * rows + r], zc = z_h[col_group[c] * rows + r];
      const double code = std::clamp(std::nearbyint(double(w_h[r * ldw + c]) / sc) + zc, 0.0, 7.0);
      EXPECT_EQ(cg[r * ldc + c], static_cast<uint8_t>(code));
      EXPECT_EQ(qg[r * ldq + c], sc * (static_cast<float>(code) - zc));
    }
}

// The GptqBlock contract, written as a loop over columns then rows.
TEST(CpuBackendGptqBlock, MatchesContractLoop) {
  auto be = cpu();
  const int64_t rows = 6, count = 21, ldw = 30, ldh = 25, ldc = 22, ldq = 23, lde = 24;
  const int maxq = 15;
  const auto w_h = random_vector(rows * ldw, 50);
  auto h_h = random_vector(count * ldh, 51, -0.2f, 0.2f);
  for (int64_t i = 0; i < count; ++i) h_h[i * ldh + i] = 0.8f + 0.01f * i;
  const auto s_h = random_vector(2 * rows, 52, 0.1f, 0.2f);
  std::vector<float> z_h(2 * rows, 8.0f);
  std::vector<int32_t> col_group(count);
  for (int64_t i = 0; i < count; ++i) col_group[i] = i < 10 ? 1 : 0;
  const auto loss0 = random_vector(rows, 53, 0.0f, 1.0f);

  Buffer w(*be, w_h), h(*be, h_h), s(*be, s_h), z(*be, z_h), q(*be, rows * ldq),
      err(*be, rows * lde), loss(*be, loss0);
  ByteBuffer codes(*be, rows * ldc);
  GptqBlock blk;
  blk.rows = rows;
  blk.count = count;
  blk.w = w.data();
  blk.ldw = ldw;
  blk.hinv = h.data();
  blk.ldh = ldh;
  blk.scale = s.data();
  blk.zero = z.data();
  blk.col_group = col_group.data();
  blk.maxq = maxq;
  blk.codes = codes.data();
  blk.ldc = ldc;
  blk.qw = q.data();
  blk.ldq = ldq;
  blk.err = err.data();
  blk.lde = lde;
  blk.loss = loss.data();
  be->gptq_block(blk);

  std::vector<double> wr(w_h.begin(), w_h.end()), loss_want(loss0.begin(), loss0.end());
  std::vector<int> code_want(rows * count);
  std::vector<double> err_want(rows * count), q_want(rows * count);
  for (int64_t i = 0; i < count; ++i)
    for (int64_t r = 0; r < rows; ++r) {
      const float sc = s_h[col_group[i] * rows + r], zc = z_h[col_group[i] * rows + r];
      const double x = wr[r * ldw + i];
      const double code = std::clamp(std::nearbyint(x / sc) + zc, 0.0, double(maxq));
      const double qq = sc * (code - zc);
      const double d = h_h[i * ldh + i];
      const double e = (x - qq) / d;
      for (int64_t j = i + 1; j < count; ++j) wr[r * ldw + j] -= e * h_h[i * ldh + j];
      code_want[r * count + i] = static_cast<int>(code);
      q_want[r * count + i] = qq;
      err_want[r * count + i] = e;
      loss_want[r] += (x - qq) * (x - qq) / (d * d) / 2;
    }
  const auto cg = codes.to_host();
  const auto qg = q.to_host(), eg = err.to_host(), wg = w.to_host(), lg = loss.to_host();
  int code_mismatch = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < count; ++i) {
      code_mismatch += cg[r * ldc + i] != code_want[r * count + i];
      EXPECT_NEAR(qg[r * ldq + i], q_want[r * count + i], 1e-5);
      EXPECT_NEAR(eg[r * lde + i], err_want[r * count + i], 1e-4);
    }
    for (int64_t j = count; j < ldw; ++j)
      EXPECT_EQ(wg[r * ldw + j], w_h[r * ldw + j]) << "outside the block";
    EXPECT_NEAR(lg[r], loss_want[r], 1e-4 * std::max(1.0, loss_want[r]));
  }
  // fp32 vs double may flip a code that sits on a rounding boundary; none expected here.
  EXPECT_EQ(code_mismatch, 0);
}

// Row-parallel loops give bit-identical results for any thread count.
TEST(CpuBackendThreads, ResultsIndependentOfThreadCount) {
  const int64_t rows = 512, count = 128;
  const auto w_h = random_vector(rows * count, 60);
  auto h_h = random_vector(count * count, 61, -0.05f, 0.05f);
  for (int64_t i = 0; i < count; ++i) h_h[i * count + i] = 1.0f;
  std::vector<std::vector<float>> w_out, s_out;
  std::vector<std::vector<uint8_t>> c_out;
  for (int threads : {1, 3}) {
    CpuBackend be(threads);
    QuantGrid grid;
    grid.mse_clip = true;
    Buffer w(be, w_h), h(be, h_h), s(be, rows), z(be, rows), q(be, rows * count),
        err(be, rows * count), loss(be, rows);
    be.quant_params(rows, count, w.data(), count, grid, s.data(), z.data());
    ByteBuffer codes(be, rows * count);
    std::vector<int32_t> col_group(count, 0);
    GptqBlock blk;
    blk.rows = rows;
    blk.count = count;
    blk.w = w.data();
    blk.ldw = count;
    blk.hinv = h.data();
    blk.ldh = count;
    blk.scale = s.data();
    blk.zero = z.data();
    blk.col_group = col_group.data();
    blk.codes = codes.data();
    blk.ldc = count;
    blk.qw = q.data();
    blk.ldq = count;
    blk.err = err.data();
    blk.lde = count;
    blk.loss = loss.data();
    be.gptq_block(blk);
    w_out.push_back(w.to_host());
    s_out.push_back(s.to_host());
    c_out.push_back(codes.to_host());
  }
  EXPECT_EQ(w_out[0], w_out[1]);
  EXPECT_EQ(s_out[0], s_out[1]);
  EXPECT_EQ(c_out[0], c_out[1]);
}

}  // namespace
}  // namespace gptqd
