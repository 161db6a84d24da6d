// parallel.stall_timeout resolved for a job (coordinator/stall_timeout.h): the value given, or
// the auto rule from the plan's per-block estimate, against values worked out by hand.
#include <gtest/gtest.h>

#include "coordinator/stall_timeout.h"

namespace gptqd {
namespace {

// A plan estimate with one stage of `blocks` blocks and the given per-block figures.
PlanEstimate estimate(int64_t blocks, double compute_s, double flops, double collective_s,
                      double read_s) {
  PlanEstimate e;
  StageEstimate st;
  st.first_block = 0;
  st.end_block = blocks;
  st.compute_s_per_block = compute_s;
  st.flops_per_block.sweep = flops;
  st.collective_s_per_block = collective_s;
  st.read_s = read_s;
  e.stages.push_back(st);
  return e;
}

TEST(StallTimeout, AGivenValueIsUsedAsIs) {
  JobConfig job;
  job.parallel.stall_timeout = 5;
  const StallTimeout t = stall_timeout_of(job, estimate(4, 1e6, 1e20, 0, 0), true);
  EXPECT_EQ(t.seconds, 5);
  EXPECT_EQ(t.rule, "parallel.stall_timeout: 5 s");
}

TEST(StallTimeout, AutoIsTheFloorForSmallBlocks) {
  const StallTimeout t = stall_timeout_of(JobConfig{}, estimate(4, 0.01, 1e9, 0.001, 0.04), true);
  EXPECT_EQ(t.seconds, kStallFloorSeconds);
  EXPECT_NE(t.rule.find("parallel.stall_timeout auto: 600 s"), std::string::npos) << t.rule;
}

TEST(StallTimeout, AutoIsTenSlowestBlocksOnTheGpu) {
  // 70 s of compute + 5 s of collectives + 700 s of reading over 70 blocks: 85 s per block.
  PlanEstimate e = estimate(70, 70, 1e15, 5, 700);
  e.stages.push_back(estimate(10, 1, 1e12, 0, 0).stages[0]);  // a faster stage
  const StallTimeout t = stall_timeout_of(JobConfig{}, e, true);
  EXPECT_DOUBLE_EQ(t.seconds, kStallBlocks * 85);
  EXPECT_NE(t.rule.find("85 s"), std::string::npos) << t.rule;
}

TEST(StallTimeout, AutoOnTheCpuCountsFlopsAtTheCpuRate) {
  // 1e14 flops at 10 GFLOP/s: 10000 s per block, whatever the GPU estimate says.
  const StallTimeout t = stall_timeout_of(JobConfig{}, estimate(4, 0.5, 1e14, 0, 0), false);
  EXPECT_DOUBLE_EQ(t.seconds, kStallBlocks * 1e14 / (kCpuStallTflops * 1e12));
}

}  // namespace
}  // namespace gptqd
