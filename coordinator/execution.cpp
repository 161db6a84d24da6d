#include "coordinator/execution.h"

#include <algorithm>
#include <thread>

#include "coordinator/collective.h"
#include "kernels/check.h"
#include "kernels/log.h"
#include "worker/transport_nccl.h"

namespace gptqd {
namespace {

// The device choice must be the same on every rank (a mixed job cannot talk), so
// GPU presence is agreed by all ranks: any rank without a GPU makes the job CPU.
bool every_rank_has_gpu(MPI_Comm comm) {
  int mine = cuda_device_count() > 0 ? 1 : 0, all = 0;
  MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, comm);
  return all == 1;
}

}  // namespace

Execution::Execution(const std::string& device, int threads, MPI_Comm comm) {
  const bool gpus = device != "cpu" && every_rank_has_gpu(comm);
  GPTQD_INPUT_CHECK(device != "cuda" || gpus,
                    "parallel.device: cuda requested but not every rank has a CUDA device");
  if (gpus) {
    be_ = make_cuda_backend(select_local_device(comm));
    nccl_ = std::make_unique<NcclComm>(comm, *be_);
    transport_ = make_nccl_transport(*nccl_);
    on_gpu_ = true;
  } else {
    be_ = make_cpu_backend(threads);
    transport_ = make_mpi_transport(comm);
  }
}

Execution::~Execution() = default;

int threads_per_rank(int requested, MPI_Comm comm) {
  if (requested > 0) return requested;
  return std::max(1,
                  static_cast<int>(std::thread::hardware_concurrency()) / local_rank_count(comm));
}

}  // namespace gptqd
