// parallel.factorization: auto (the default). A stage's replicas either each factorize every
// layer's Hessian alone (replicated) or once together (distributed: cuSOLVERMp on GPUs,
// ScaLAPACK on the CPU backend; docs/distributed-factorization.md). Neither is faster
// everywhere: distributed divides the factorization's flops by the replicas but adds its panel
// traffic and the gather of U, and reference ScaLAPACK runs its flops slower than LAPACK. auto
// takes the one with the smaller estimated job time (coordinator/plan_estimate.h), from the
// plan, the model's shapes, the job's settings and the machine's rates alone: data every rank
// holds alike, so every rank of every stage takes the same decision, and the same inputs give
// the same decision on every run (no timing enters it).
#pragma once

#include <string>

#include "coordinator/plan_estimate.h"

namespace gptqd {

// w.factorization replicated or distributed: that, as written (automatic false, no estimates).
// auto: the two estimates of the whole job and the faster, replicated on a tie (one replica per
// stage always ties: nothing to share) and wherever the route is kScalapackBesideGpu (the host's
// ScaLAPACK rate is not modelled; its estimate is left 0).
FactorDecision decide_factorization(const Plan& plan, const ModelSpec& dims, const Workload& w,
                                    const Machine& m);

// One line saying what runs and why, for the job's log and `gptqd plan`, e.g.
// "factorization auto: distributed, estimated 10.4 min for the job against 23.4 min replicated
// (8 replicas per stage, cuSOLVERMp on their GPUs)".
std::string describe_factor_decision(const FactorDecision& d);

}  // namespace gptqd
