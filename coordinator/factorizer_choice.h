// Which HostFactorizer (worker/gptq.h) a stage's replicas share when they factorize together
// (parallel.factorization distributed, or auto deciding so: coordinator/factorization_auto.h):
// cuSOLVERMp on the GPUs when the backend is CUDA, this gptqd has it and every replica of the
// stage has a GPU of its own (NCCL's condition); ScaLAPACK on the host otherwise. None with one
// replica per stage (nothing to share) or a replicated factorization.
#pragma once

#include <mpi.h>

#include <memory>
#include <string>

#include "coordinator/plan_estimate.h"
#include "kernels/backend.h"
#include "worker/gptq.h"

namespace gptqd {

// Where this stage's distributed factorization would run, and why not on the GPUs when the
// backend is CUDA (empty otherwise). Collective over stage_comm: every replica gets the same
// answer (the backend kind and cuSOLVERMp's presence are agreed over the stage).
struct FactorRouteInfo {
  FactorRoute route = FactorRoute::kScalapack;
  std::string why_host;
};
FactorRouteInfo factor_route_of(MPI_Comm stage_comm, Backend& be);

struct FactorizerChoice {
  std::unique_ptr<HostFactorizer> factorizer;  // null: each replica factorizes alone
  std::string what;                            // the log line's text
};

// Collective over stage_comm (the replicas of this rank's stage) when `distributed` with more
// than one replica.
FactorizerChoice choose_factorizer(bool distributed, const FactorRouteInfo& route,
                                   MPI_Comm stage_comm, Backend& be);

}  // namespace gptqd
