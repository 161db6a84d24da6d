#include "worker/families/moe_routing.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "base/check.h"

namespace gptqd {

void softmax_row(const float* logits, int64_t n, float* p) {
  float m = logits[0];
  for (int64_t i = 1; i < n; ++i) m = std::max(m, logits[i]);
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    p[i] = std::exp(logits[i] - m);
    sum += p[i];
  }
  for (int64_t i = 0; i < n; ++i) p[i] /= sum;
}

std::vector<ExpertRoute> route_top_k(const std::vector<float>& logits, int64_t tokens,
                                     int64_t experts, int64_t k, bool renormalize) {
  GPTQD_CHECK(k >= 1 && k <= experts && static_cast<int64_t>(logits.size()) == tokens * experts,
              "routing {} tokens over {} experts, top {}, from {} logits", tokens, experts, k,
              logits.size());
  std::vector<ExpertRoute> routes(static_cast<size_t>(experts));
  std::vector<float> p(static_cast<size_t>(experts));
  std::vector<int64_t> order(static_cast<size_t>(experts));
  std::vector<float> w(static_cast<size_t>(k));
  for (int64_t t = 0; t < tokens; ++t) {
    softmax_row(logits.data() + t * experts, experts, p.data());
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int64_t a, int64_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    float sum = 0;
    for (int64_t j = 0; j < k; ++j) {
      w[j] = p[order[j]];
      sum += w[j];
    }
    for (int64_t j = 0; j < k; ++j) {
      ExpertRoute& r = routes[static_cast<size_t>(order[j])];
      r.tokens.push_back(t);
      r.weights.push_back(renormalize ? w[j] / sum : w[j]);
    }
  }
  return routes;
}

}  // namespace gptqd
