#include "coordinator/factorization_auto.h"

#include "base/check.h"
#include "base/log.h"

namespace gptqd {
namespace {

// Seconds in a few characters, as `gptqd plan`'s tables write them from a second on; below,
// enough digits for a test model's microseconds.
std::string seconds_text(double s) {
  if (s >= 7200) return fmt::format("{:.2f} h", s / 3600);
  if (s >= 120) return fmt::format("{:.1f} min", s / 60);
  if (s >= 1) return fmt::format("{:.0f} s", s);
  if (s >= 1e-3) return fmt::format("{:.2f} ms", s * 1e3);
  return fmt::format("{:.2f} us", s * 1e6);
}

const char* route_text(FactorRoute r) {
  switch (r) {
    case FactorRoute::kCusolverMp:
      return "cuSOLVERMp on their GPUs";
    case FactorRoute::kScalapack:
      return "ScaLAPACK on the CPU backend";
    case FactorRoute::kScalapackBesideGpu:
      return "ScaLAPACK on the host: no cuSOLVERMp";
  }
  return "";
}

}  // namespace

FactorDecision decide_factorization(const Plan& plan, const ModelSpec& dims, const Workload& w,
                                    const Machine& m) {
  FactorDecision d;
  d.replicas = plan.replicas;
  d.route = w.factor_route;
  if (w.factorization != FactorSetting::kAuto) {
    d.distributed = w.factorization == FactorSetting::kDistributed;
    return d;
  }
  d.automatic = true;
  Workload each = w;
  each.factorization = FactorSetting::kReplicated;
  d.replicated_s = estimate_plan(plan, dims, each, m).job_seconds;
  if (w.factor_route == FactorRoute::kScalapackBesideGpu) return d;
  each.factorization = FactorSetting::kDistributed;
  d.distributed_s = estimate_plan(plan, dims, each, m).job_seconds;
  d.distributed = d.distributed_s < d.replicated_s;
  return d;
}

std::string describe_factor_decision(const FactorDecision& d) {
  const std::string chosen = d.distributed ? "distributed" : "replicated";
  if (!d.automatic) return fmt::format("factorization {} (parallel.factorization)", chosen);
  const std::string where = fmt::format("{} replica{} per stage, {}", d.replicas,
                                        d.replicas == 1 ? "" : "s", route_text(d.route));
  if (d.route == FactorRoute::kScalapackBesideGpu)
    return fmt::format(
        "factorization auto: replicated, estimated {} for the job; distributed not estimated "
        "({}: the plan has no rate for the host's CPUs)",
        seconds_text(d.replicated_s), where);
  const std::string other = d.distributed ? "replicated" : "distributed";
  return fmt::format("factorization auto: {}, estimated {} for the job against {} {} ({}{})",
                     chosen, seconds_text(d.distributed ? d.distributed_s : d.replicated_s),
                     seconds_text(d.distributed ? d.replicated_s : d.distributed_s), other, where,
                     d.replicas == 1 ? ": nothing to share, a tie goes to replicated" : "");
}

}  // namespace gptqd
