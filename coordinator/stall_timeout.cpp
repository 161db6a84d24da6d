#include "coordinator/stall_timeout.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>

namespace gptqd {

StallTimeout stall_timeout_of(const JobConfig& job, const PlanEstimate& estimate, bool on_gpu) {
  if (job.parallel.stall_timeout > 0) {
    return {job.parallel.stall_timeout,
            fmt::format("parallel.stall_timeout: {} s", job.parallel.stall_timeout)};
  }
  double block = 0;
  for (const StageEstimate& st : estimate.stages) {
    const int64_t nblocks = std::max<int64_t>(1, st.end_block - st.first_block);
    const double compute =
        on_gpu ? st.compute_s_per_block : st.flops_per_block.total() / (kCpuStallTflops * 1e12);
    block = std::max(
        block, compute + st.collective_s_per_block + st.read_s / static_cast<double>(nblocks));
  }
  const double seconds = std::max(kStallFloorSeconds, kStallBlocks * block);
  return {seconds, fmt::format("parallel.stall_timeout auto: {:.0f} s, the larger of {:.0f} s and "
                               "{:.0f} x the slowest block the plan predicts, {:.3g} s",
                               seconds, kStallFloorSeconds, kStallBlocks, block)};
}

}  // namespace gptqd
