#include "coordinator/report.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <type_traits>

#include "base/check.h"
#include "io/model/model_spec.h"
#include "worker/transport/transport.h"

namespace gptqd {

static_assert(std::is_trivially_copyable<LayerReport>::value, "LayerReport travels as bytes");

std::vector<LayerReport> gather_reports(MPI_Comm comm, int root,
                                        const std::vector<LayerReport>& mine) {
  int rank = 0, world = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &world);
  const int bytes = static_cast<int>(mine.size() * sizeof(LayerReport));
  std::vector<int> counts(world), displs(world);
  // Nonblocking, waited for by mpi_wait_yielding: a late or stopped rank is waited for asleep,
  // under the job's liveness rule.
  MPI_Request r;
  MPI_Igather(&bytes, 1, MPI_INT, counts.data(), 1, MPI_INT, root, comm, &r);
  GPTQD_CHECK(mpi_wait_yielding(&r, MPI_STATUS_IGNORE) == MPI_SUCCESS, "MPI_Igather failed");
  int total = 0;
  for (int i = 0; i < world; ++i) {
    displs[i] = total;
    total += counts[i];
  }
  std::vector<LayerReport> all(rank == root ? total / sizeof(LayerReport) : 0);
  MPI_Igatherv(mine.data(), bytes, MPI_BYTE, all.data(), counts.data(), displs.data(), MPI_BYTE,
               root, comm, &r);
  GPTQD_CHECK(mpi_wait_yielding(&r, MPI_STATUS_IGNORE) == MPI_SUCCESS, "MPI_Igatherv failed");
  std::sort(all.begin(), all.end(), [](const LayerReport& a, const LayerReport& b) {
    return std::tie(a.run, a.block, a.layer) < std::tie(b.run, b.block, b.layer);
  });
  return all;
}

std::string format_report(const JobConfig& job, const ModelSpec& spec,
                          const std::vector<LayerReport>& rows) {
  std::string out;
  // Per block kind (ModelSpec::kinds): whether linear i is its expert's first.
  std::vector<std::vector<bool>> first_of_expert;
  for (int k = 0; k < spec.n_kinds(); ++k) {
    const std::vector<LinearSpec>& linears = spec.kind(k).linears;
    std::vector<bool>& first = first_of_expert.emplace_back(linears.size());
    std::set<int> seen;
    for (size_t i = 0; i < linears.size(); ++i) {
      const int e = linears[i].expert;
      first[i] = e >= 0 && seen.insert(e).second;
    }
  }
  for (size_t r = 0; r < job.runs.size(); ++r) {
    const QuantConfig& q = job.runs[r];
    out +=
        fmt::format("\nrun {}: {}-bit, group {}, {}{}{}{}{}\n", q.name, q.bits, q.group_size,
                    q.sym ? "sym" : "asym", q.act_order ? ", act_order" : "",
                    q.static_groups ? ", static_groups" : "",
                    q.true_sequential ? ", true_sequential" : "", q.mse_clip ? ", mse_clip" : "");
    out += fmt::format("{:>5}  {:<32} {:>11}  {:>11} {:>11} {:>8}  {:>7} {:>8}\n", "block", "layer",
                       "shape", "GPTQ err", "RTN err", "GPTQ/RTN", "damp", "time");
    double gptq = 0, rtn = 0, secs = 0;
    int resumed = 0;
    // Mixtures of experts: each (block, expert) counted once, at its first layer (its gate).
    int experts = 0, starved = 0;
    for (const LayerReport& row : rows) {
      if (row.run != static_cast<int32_t>(r)) continue;
      const ModelSpec& kind = spec.block(row.block);
      if (first_of_expert[static_cast<size_t>(spec.kind_of(row.block))]
                         [static_cast<size_t>(row.layer)] &&
          row.tokens >= 0) {
        ++experts;
        starved += row.tokens < job.moe.min_tokens ? 1 : 0;
      }
      const LayerStats& s = row.stats;
      const double ratio = s.rtn_err > 0 ? s.gptq_err / s.rtn_err : 0.0;
      out +=
          fmt::format("{:>5}  {:<32} {:>11}  {:>11.4e} {:>11.4e} {:>8.3f}  {:>7.4f} {:>7.2f}s{}\n",
                      row.block, kind.linears[static_cast<size_t>(row.layer)].module,
                      fmt::format("{}x{}", row.rows, row.cols), s.gptq_err, s.rtn_err, ratio,
                      s.damp, s.seconds, row.resumed ? " (resumed)" : "");
      gptq += s.gptq_err;
      rtn += s.rtn_err;
      secs += s.seconds;
      resumed += row.resumed;
    }
    out += fmt::format(
        "total: GPTQ err {:.4e}, RTN err {:.4e} (GPTQ/RTN {:.3f}), GPTQ time {:.2f} s{}\n", gptq,
        rtn, rtn > 0 ? gptq / rtn : 0.0, secs,
        resumed ? fmt::format(", {} layers resumed from the checkpoint", resumed) : "");
    if (experts > 0) {
      out += fmt::format(
          "experts: {} of {} (over the blocks) had fewer than moe.min_tokens {} calibration "
          "tokens and were quantized with RTN\n",
          starved, experts, job.moe.min_tokens);
    }
  }
  out +=
      "\nerr = tr((W-Q) H (W-Q)^T) = (2/nsamples) * sum over calibration tokens x of ||W x - Q "
      "x||^2\n";
  return out;
}

}  // namespace gptqd
