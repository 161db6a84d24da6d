#include "worker/families/deepseek_routing.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "base/check.h"

namespace gptqd {

std::vector<ExpertRoute> route_deepseek(const std::vector<float>& logits,
                                        const std::vector<float>& bias, int64_t tokens,
                                        const DeepseekRouting& r) {
  const int64_t e = r.experts, g = r.n_group, per = e / std::max<int64_t>(g, 1);
  GPTQD_CHECK(r.k >= 1 && r.k <= e && g >= 1 && e % g == 0 && per >= 2 && r.topk_group >= 1 &&
                  r.topk_group <= g && static_cast<int64_t>(logits.size()) == tokens * e &&
                  static_cast<int64_t>(bias.size()) == e,
              "routing {} tokens over {} experts in {} groups (top {} groups, top {}) from {} "
              "logits and {} biases",
              tokens, e, g, r.topk_group, r.k, logits.size(), bias.size());
  std::vector<ExpertRoute> routes(static_cast<size_t>(e));
  std::vector<float> s(static_cast<size_t>(e)), c(s.size()), group(static_cast<size_t>(g));
  std::vector<int64_t> order(s.size()), gorder(group.size());
  std::vector<float> w(static_cast<size_t>(r.k));
  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t i = 0; i < e; ++i) {
      s[i] = 1.0f / (1.0f + std::exp(-logits[t * e + i]));
      c[i] = r.use_correction_bias ? s[i] + bias[i] : s[i];
    }
    if (r.group_limited && r.topk_group < g) {
      for (int64_t q = 0; q < g; ++q) {
        const float* x = c.data() + q * per;
        float a = neg_inf, b = neg_inf;  // the largest and second largest
        for (int64_t i = 0; i < per; ++i) {
          if (x[i] > a) {
            b = a;
            a = x[i];
          } else if (x[i] > b) {
            b = x[i];
          }
        }
        group[q] = a + b;
      }
      std::iota(gorder.begin(), gorder.end(), 0);
      std::partial_sort(gorder.begin(), gorder.begin() + r.topk_group, gorder.end(),
                        [&](int64_t a, int64_t b) {
                          return group[a] > group[b] || (group[a] == group[b] && a < b);
                        });
      for (int64_t q = r.topk_group; q < g; ++q) {
        std::fill_n(c.begin() + gorder[q] * per, per, neg_inf);
      }
    }
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + r.k, order.end(),
                      [&](int64_t a, int64_t b) { return c[a] > c[b] || (c[a] == c[b] && a < b); });
    float sum = 0;
    for (int64_t j = 0; j < r.k; ++j) {
      w[j] = s[order[j]];
      sum += w[j];
    }
    for (int64_t j = 0; j < r.k; ++j) {
      const float x = r.norm_topk_prob ? w[j] / (sum + 1e-20f) : w[j];
      ExpertRoute& route = routes[static_cast<size_t>(order[j])];
      route.tokens.push_back(t);
      route.weights.push_back(x * r.routed_scaling_factor);
    }
  }
  return routes;
}

}  // namespace gptqd
