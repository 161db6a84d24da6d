// What the NCCL users of a CUDA build share (worker/transport/transport_nccl.cpp,
// worker/distributed_factor_gpu.cpp): the CUDA error check and the NCCL id handed out over MPI.
// Names CUDA and NCCL types: include it only from files built with CUDA.
#pragma once

#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>

namespace gptqd {

// Throws gptqd::Error "<call> failed: <name>: <text>" unless err is cudaSuccess.
void cuda_check(cudaError_t err, const char* call);

// Collective over comm: rank 0's ncclGetUniqueId on every rank, for ncclCommInitRank. Whether
// rank 0 could make one travels with it, so a failure there is an error on every rank
// ("rank r: ncclGetUniqueId failed on rank 0: <NCCL's reason>") rather than a hang.
ncclUniqueId nccl_unique_id(MPI_Comm comm);

}  // namespace gptqd
