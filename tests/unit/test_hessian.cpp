// HessianAccumulator: the streaming update must equal (2 / N) sum_t x x^T
// over all tokens, N counting samples (sequences), however the batches split.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/backend.h"
#include "kernels/buffer.h"
#include "base/check.h"
#include "tests/test_util.h"
#include "worker/hessian.h"

namespace gptqd {
namespace {

using test::random_vector;

std::vector<double> direct_hessian(const std::vector<float>& x, int64_t tokens, int64_t dim,
                                   int64_t samples) {
  std::vector<double> h(dim * dim, 0.0);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t i = 0; i < dim; ++i)
      for (int64_t j = 0; j < dim; ++j) h[i * dim + j] += double(x[t * dim + i]) * x[t * dim + j];
  for (auto& v : h) v *= 2.0 / samples;
  return h;
}

TEST(Hessian, StreamingEqualsDirectForAnySplit) {
  auto be = make_cpu_backend(1);
  const int64_t dim = 24, seq = 10, nsamples = 7;
  const auto x = random_vector(nsamples * seq * dim, 200);
  const auto want = direct_hessian(x, nsamples * seq, dim, nsamples);
  // Batches of 1, then of 3+3+1 samples, then all at once.
  for (const std::vector<int64_t>& split :
       {std::vector<int64_t>(7, 1), std::vector<int64_t>{3, 3, 1}, std::vector<int64_t>{7}}) {
    HessianAccumulator acc(*be, dim);
    EXPECT_EQ(acc.dim(), dim);
    int64_t done = 0;
    for (int64_t m : split) {
      Buffer xb(*be, std::vector<float>(x.begin() + done * seq * dim,
                                        x.begin() + (done + m) * seq * dim));
      acc.add(xb.data(), m * seq, m);
      done += m;
      EXPECT_EQ(acc.samples(), done);
    }
    const auto got = acc.to_host();
    for (int64_t i = 0; i < dim * dim; ++i) EXPECT_NEAR(got[i], want[i], 1e-5 * seq * 2) << i;
    for (int64_t i = 0; i < dim; ++i)
      for (int64_t j = 0; j < dim; ++j) EXPECT_EQ(got[i * dim + j], got[j * dim + i]);
  }
}

// The reference's update written out: H *= n / (n + m); n += m; H += (2/n) X^T X.
TEST(Hessian, FollowsTheReferenceRecurrence) {
  auto be = make_cpu_backend(1);
  const int64_t dim = 5;
  const std::vector<int64_t> tokens = {3, 8, 1}, samples = {1, 4, 2};
  std::vector<double> h(dim * dim, 0.0);
  int64_t n = 0;
  HessianAccumulator acc(*be, dim);
  for (size_t b = 0; b < tokens.size(); ++b) {
    const auto x = random_vector(tokens[b] * dim, 210 + static_cast<uint32_t>(b), -2.0f, 2.0f);
    for (auto& v : h) v *= double(n) / double(n + samples[b]);
    n += samples[b];
    const auto add = direct_hessian(x, tokens[b], dim, n);
    for (int64_t i = 0; i < dim * dim; ++i) h[i] += add[i];
    Buffer xb(*be, x);
    acc.add(xb.data(), tokens[b], samples[b]);
  }
  const auto got = acc.to_host();
  for (int64_t i = 0; i < dim * dim; ++i) EXPECT_NEAR(got[i], h[i], 1e-5) << i;
  EXPECT_EQ(acc.samples(), 7);
}

TEST(Hessian, ResetAndBadCounts) {
  auto be = make_cpu_backend(1);
  HessianAccumulator acc(*be, 3);
  Buffer x(*be, std::vector<float>{1, 2, 3, 4, 5, 6});
  acc.add(x.data(), 2, 1);
  EXPECT_NE(acc.to_host()[0], 0.0f);
  acc.reset();
  EXPECT_EQ(acc.samples(), 0);
  for (float v : acc.to_host()) EXPECT_EQ(v, 0.0f);
  acc.add(x.data(), 1, 1);            // after reset: as if fresh
  EXPECT_EQ(acc.to_host()[0], 2.0f);  // (2/1) * 1 * 1
  EXPECT_THROW(acc.add(x.data(), 2, 0), Error);
  EXPECT_THROW(acc.add(x.data(), -1, 1), Error);
  EXPECT_THROW(HessianAccumulator(*be, 0), Error);
}

// A feature that never fires leaves a zero row and column (a dead input for GPTQ).
TEST(Hessian, DeadFeatureStaysExactlyZero) {
  auto be = make_cpu_backend(1);
  const int64_t dim = 6, tokens = 20;
  auto x = random_vector(tokens * dim, 220);
  for (int64_t t = 0; t < tokens; ++t) x[t * dim + 4] = 0.0f;
  HessianAccumulator acc(*be, dim);
  Buffer xb(*be, x);
  acc.add(xb.data(), tokens, 2);
  acc.add(xb.data(), tokens, 3);
  const auto h = acc.to_host();
  for (int64_t i = 0; i < dim; ++i) {
    EXPECT_EQ(h[4 * dim + i], 0.0f);
    EXPECT_EQ(h[i * dim + 4], 0.0f);
  }
}

}  // namespace
}  // namespace gptqd
