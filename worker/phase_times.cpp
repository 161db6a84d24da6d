#include "worker/phase_times.h"

#include <fmt/format.h>

namespace gptqd {

PhaseTimes& PhaseTimes::operator+=(const PhaseTimes& o) {
  forward += o.forward;
  reduce += o.reduce;
  factor += o.factor;
  sweep += o.sweep;
  stats += o.stats;
  gather += o.gather;
  read += o.read;
  write += o.write;
  wait += o.wait;
  return *this;
}

double PhaseTimes::total() const {
  return forward + reduce + factor + sweep + stats + gather + read + write + wait;
}

std::string PhaseTimes::describe() const {
  return fmt::format(
      "forward and Hessians {:.3f} s, Hessian sums {:.3f} s, factorization {:.3f} s, GPTQ sweep "
      "{:.3f} s, statistics {:.3f} s, row gathers {:.3f} s, weights {:.3f} s, checkpoint {:.3f} s, "
      "waiting for the previous stage {:.3f} s",
      forward, reduce, factor, sweep, stats, gather, read, write, wait);
}

}  // namespace gptqd
