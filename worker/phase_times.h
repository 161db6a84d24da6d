// Where a stage's time goes, per run: the phases of gptqd plan's time model
// (coordinator/plan_estimate.h) as the job measures them, so a run can be held against its plan
// (tests/mpi/plan_vs_run.sh). Each phase ends with the backend synchronized, so the figures are
// wall time on a GPU too; what no phase covers is the rest of the run's time.
#pragma once

#include <chrono>
#include <string>

#include "base/timing.h"
#include "kernels/backend.h"

namespace gptqd {

// Wall time between laps, the backend's queued work included (it synchronizes at each lap).
class PhaseClock {
 public:
  explicit PhaseClock(Backend& be) : be_(be), mark_(SteadyClock::now()) {}
  // Seconds since the clock was made or last lapped.
  double lap() {
    be_.synchronize();
    const auto now = SteadyClock::now();
    const double s = std::chrono::duration<double>(now - mark_).count();
    mark_ = now;
    return s;
  }

 private:
  Backend& be_;
  SteadyClock::time_point mark_;
};

struct PhaseTimes {
  double forward = 0;      // the block's passes: the Hessian captures (with their X^T X) and the
                           // output pass that feeds the next block
  double reduce = 0;       // the Hessians to the host and their sum over the replicas
  double factor = 0;       // GPTQ: damping and the factorization of H^-1
  double sweep = 0;        // GPTQ: the rest (checks, permutation, the column sweep, the result)
  double stats = 0;        // RTN beside it and both output errors (the report)
  double gather = 0;       // the quantized rows gathered over the replicas, weights set
  double read = 0;         // waiting for a block's weights (read ahead on a thread)
  double write = 0;        // the checkpoint: rows, stats, sync and the mark
  double wait = 0;         // waiting for the previous stage's activations (taken out of forward)
  PhaseTimes& operator+=(const PhaseTimes& o);
  double total() const;
  // "forward and Hessians 1.20 s, Hessian sums 0.01 s, ..." for the job's log.
  std::string describe() const;
};

}  // namespace gptqd
