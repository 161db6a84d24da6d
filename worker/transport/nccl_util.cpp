#include "worker/transport/nccl_util.h"

#include <cstdio>

#include "base/check.h"

namespace gptqd {

void cuda_check(cudaError_t err, const char* call) {
  GPTQD_CHECK(err == cudaSuccess, "{} failed: {}: {}", call, cudaGetErrorName(err),
              cudaGetErrorString(err));
}

ncclUniqueId nccl_unique_id(MPI_Comm comm) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  struct IdMessage {
    int ok = 0;
    ncclUniqueId id{};
    char why[200] = {};
  } msg;
  if (rank == 0) {
    const ncclResult_t r = ncclGetUniqueId(&msg.id);
    msg.ok = r == ncclSuccess;
    std::snprintf(msg.why, sizeof msg.why, "%s", ncclGetErrorString(r));
  }
  const int rc = MPI_Bcast(&msg, sizeof msg, MPI_BYTE, 0, comm);
  GPTQD_CHECK(rc == MPI_SUCCESS, "MPI_Bcast of the NCCL unique id failed (MPI error {})", rc);
  GPTQD_CHECK(msg.ok, "rank {}: ncclGetUniqueId failed on rank 0: {}", rank, msg.why);
  return msg.id;
}

}  // namespace gptqd
