#include "coordinator/plan.h"

#include <algorithm>

#include "kernels/check.h"

namespace gptqd {
namespace {

// Contiguous split of n equal blocks into k stages, stage 0 also carrying `extra`
// bytes: minimises the largest stage by binary search on the capacity.
std::vector<StagePlan> balance(int64_t n, int k, uint64_t block_bytes, uint64_t extra) {
  auto fits = [&](uint64_t cap, std::vector<StagePlan>* out) {
    std::vector<StagePlan> st;
    int64_t b = 0;
    for (int s = 0; s < k; ++s) {
      StagePlan p;
      p.first_block = b;
      uint64_t used = s == 0 ? extra : 0;
      const int64_t max_end = n - (k - s - 1);  // every later stage needs a block
      if (b >= max_end) return false;
      used += block_bytes;  // at least one block per stage
      ++b;
      while (b < max_end && used + block_bytes <= cap) {
        used += block_bytes;
        ++b;
      }
      if (used > cap) return false;
      p.end_block = b;
      p.weight_bytes = used;
      st.push_back(p);
    }
    if (b != n) return false;
    if (out) *out = st;
    return true;
  };
  uint64_t lo = block_bytes, hi = extra + block_bytes * static_cast<uint64_t>(n);
  while (lo < hi) {
    const uint64_t mid = lo + (hi - lo) / 2;
    if (fits(mid, nullptr)) hi = mid;
    else lo = mid + 1;
  }
  std::vector<StagePlan> out;
  GPTQD_CHECK(fits(lo, &out), "stage balancing failed for {} blocks on {} stages", n, k);
  return out;
}

}  // namespace

uint64_t block_weight_bytes(const BloomDims& d) {
  const uint64_t h = static_cast<uint64_t>(d.hidden);
  const uint64_t f = static_cast<uint64_t>(d.ffn);
  const uint64_t params = 3 * h * h + 3 * h + h * h + h + f * h + f + h * f + h + 4 * h;
  return params * sizeof(float);
}

uint64_t embedding_weight_bytes(const BloomDims& d) {
  return (static_cast<uint64_t>(d.vocab) * d.hidden + 2 * static_cast<uint64_t>(d.hidden)) * sizeof(float);
}

Plan make_plan(const BloomDims& d, int world, int64_t stages_requested) {
  GPTQD_INPUT_CHECK(world >= 1, "world size must be positive");
  Plan p;
  p.world = world;
  if (stages_requested > 0) {
    GPTQD_INPUT_CHECK(stages_requested <= d.n_layer, "parallel.stages: {} stages for a model of {} blocks",
                      stages_requested, d.n_layer);
    GPTQD_INPUT_CHECK(world % stages_requested == 0,
                      "parallel.stages: {} ranks cannot be split into {} stages of equal replicas", world,
                      stages_requested);
    p.stages = static_cast<int>(stages_requested);
  } else {
    // auto: as many stages as ranks (memory capacity), capped by the block count and
    // kept a divisor of the world so every stage gets the same number of replicas.
    int s = static_cast<int>(std::min<int64_t>(world, d.n_layer));
    while (world % s != 0) --s;
    p.stages = s;
  }
  p.replicas = world / p.stages;
  p.stage = balance(d.n_layer, p.stages, block_weight_bytes(d), embedding_weight_bytes(d));
  return p;
}

std::string Plan::describe() const {
  std::string s = fmt::format("{} rank(s) = {} stage(s) x {} replica(s):", world, stages, replicas);
  for (int i = 0; i < stages; ++i) {
    s += fmt::format(" stage {} blocks [{}, {})", i, stage[i].first_block, stage[i].end_block);
    if (i + 1 < stages) s += ";";
  }
  return s;
}

}  // namespace gptqd
