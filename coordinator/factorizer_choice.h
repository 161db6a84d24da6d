// Which HostFactorizer (worker/gptq.h) a stage's replicas share for
// parallel.factorization: distributed: cuSOLVERMp on the GPUs when the backend is CUDA, this
// gptqd has it and every replica of the stage has a GPU of its own (NCCL's condition);
// ScaLAPACK on the host otherwise. None with one replica per stage (nothing to share) or with
// factorization: replicated. Logs the choice and why on the stage's first replica of stage 0.
#pragma once

#include <mpi.h>

#include <memory>
#include <string>

#include "kernels/backend.h"
#include "worker/gptq.h"

namespace gptqd {

struct FactorizerChoice {
  std::unique_ptr<HostFactorizer> factorizer;  // null: each replica factorizes alone
  std::string what;                            // the log line's text
};

// Collective over stage_comm (the replicas of this rank's stage).
FactorizerChoice choose_factorizer(const std::string& factorization, MPI_Comm stage_comm,
                                   Backend& be);

}  // namespace gptqd
