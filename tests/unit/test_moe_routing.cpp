// Top-k routing (worker/families/moe_routing.h) on hand-made logits: which experts each token
// takes, in which order ties break, and the weights with and without renormalisation.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "base/check.h"
#include "worker/families/moe_routing.h"

namespace gptqd {
namespace {

std::vector<float> softmax(std::vector<float> row) {
  std::vector<float> p(row.size());
  softmax_row(row.data(), static_cast<int64_t>(row.size()), p.data());
  return p;
}

TEST(MoeRouting, TopKTokensAndWeights) {
  // 3 tokens x 4 experts.
  const std::vector<float> logits = {1,  3, 2, 0,    // token 0: experts 1, 2
                                     0,  0, 0, 5,    // token 1: expert 3, then the tie 0,1,2 -> 0
                                     -1, 4, 4, -2};  // token 2: the tie 1 = 2 -> 1 first
  for (bool renorm : {false, true}) {
    SCOPED_TRACE(renorm ? "renormalised" : "softmax weights");
    const std::vector<ExpertRoute> r = route_top_k(logits, 3, 4, 2, renorm);
    ASSERT_EQ(r.size(), 4u);
    EXPECT_EQ(r[0].tokens, (std::vector<int64_t>{1}));
    EXPECT_EQ(r[1].tokens, (std::vector<int64_t>{0, 2}));
    EXPECT_EQ(r[2].tokens, (std::vector<int64_t>{0, 2}));
    EXPECT_EQ(r[3].tokens, (std::vector<int64_t>{1}));
    const std::vector<float> p0 = softmax({1, 3, 2, 0});
    const float s0 = renorm ? p0[1] + p0[2] : 1.0f;
    EXPECT_FLOAT_EQ(r[1].weights[0], p0[1] / s0);
    EXPECT_FLOAT_EQ(r[2].weights[0], p0[2] / s0);
    // Every token's weights sum to 1 when renormalised.
    std::vector<double> sum(3, 0);
    for (const ExpertRoute& e : r) {
      for (size_t i = 0; i < e.tokens.size(); ++i) sum[e.tokens[i]] += e.weights[i];
    }
    for (double v : sum) {
      if (renorm) {
        EXPECT_NEAR(v, 1.0, 1e-6);
      } else {
        EXPECT_LT(v, 1.0);
      }
    }
  }
}

TEST(MoeRouting, TopOneAndAllExperts) {
  const std::vector<float> logits = {0.5f, -0.5f, 2.0f};  // 1 token x 3 experts
  const std::vector<ExpertRoute> one = route_top_k(logits, 1, 3, 1, false);
  EXPECT_TRUE(one[0].tokens.empty() && one[1].tokens.empty());
  ASSERT_EQ(one[2].tokens.size(), 1u);
  EXPECT_FLOAT_EQ(one[2].weights[0], softmax({0.5f, -0.5f, 2.0f})[2]) << "top-1 keeps p";
  EXPECT_FLOAT_EQ(route_top_k(logits, 1, 3, 1, true)[2].weights[0], 1.0f);
  const std::vector<ExpertRoute> all = route_top_k(logits, 1, 3, 3, false);
  for (const ExpertRoute& e : all) EXPECT_EQ(e.tokens.size(), 1u);
}

TEST(MoeRouting, BadArgumentsThrow) {
  const std::vector<float> logits(6, 0.0f);
  EXPECT_THROW(route_top_k(logits, 2, 3, 0, false), Error);
  EXPECT_THROW(route_top_k(logits, 2, 3, 4, false), Error);
  EXPECT_THROW(route_top_k(logits, 3, 3, 1, false), Error) << "6 logits for 3 x 3";
}

// Large logits: the max is subtracted before exp (no overflow to inf / NaN).
TEST(MoeRouting, SoftmaxIsStable) {
  const std::vector<float> p = softmax({1000.0f, 999.0f, -1000.0f});
  EXPECT_TRUE(std::isfinite(p[0]) && std::isfinite(p[1]));
  EXPECT_NEAR(p[0] + p[1] + p[2], 1.0, 1e-6);
  EXPECT_NEAR(p[0] / p[1], std::exp(1.0), 1e-4);
}

}  // namespace
}  // namespace gptqd
