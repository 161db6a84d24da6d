#include "coordinator/plan.h"

#include <algorithm>

#include "base/check.h"

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
    if (fits(mid, nullptr))
      hi = mid;
    else
      lo = mid + 1;
  }
  std::vector<StagePlan> out;
  GPTQD_CHECK(fits(lo, &out), "stage balancing failed for {} blocks on {} stages", n, k);
  return out;
}

// Empty when the layout works, else why not (one phrase).
std::string infeasible(const ModelSpec& d, int world, int stages, int64_t nsamples) {
  if (stages < 1 || stages > d.n_layer)
    return fmt::format("parallel.stages: {} stages for a model of {} blocks", stages, d.n_layer);
  if (world % stages != 0)
    return fmt::format("parallel.stages: {} ranks cannot be split into {} stages of equal replicas",
                       world, stages);
  const int replicas = world / stages;
  if (replicas > nsamples)
    return fmt::format(
        "calibration.nsamples: {} ranks in {} stage(s) make {} replicas per stage, but there are "
        "only {} samples to share (every replica needs one): use more stages or more samples",
        world, stages, replicas, nsamples);
  if (replicas > d.hidden)
    return fmt::format("parallel.stages: {} replicas per stage exceed the {} rows of a layer",
                       replicas, d.hidden);
  return "";
}

}  // namespace

Plan make_plan(const ModelSpec& d, int world, int stages, int64_t nsamples,
               StageBalance how) {
  GPTQD_INPUT_CHECK(world >= 1, "world size must be positive");
  const std::string why = infeasible(d, world, stages, nsamples);
  GPTQD_INPUT_CHECK(why.empty(), "{}", why);
  Plan p;
  p.world = world;
  p.stages = stages;
  p.replicas = world / stages;
  const bool by_weights = how == StageBalance::kWeights;
  p.stage = balance(d.n_layer, p.stages, block_weight_bytes(d),
                    by_weights ? embedding_weight_bytes(d) : 0);
  // By block count the embedding is not in the split; weight_bytes still counts it.
  if (!by_weights && !p.stage.empty()) p.stage[0].weight_bytes += embedding_weight_bytes(d);
  return p;
}

std::vector<int> feasible_stage_counts(const ModelSpec& d, int world, int64_t nsamples) {
  std::vector<int> out;
  for (int s = 1; s <= world; ++s)
    if (infeasible(d, world, s, nsamples).empty()) out.push_back(s);
  return out;
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
