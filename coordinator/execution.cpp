#include "coordinator/execution.h"

#include <algorithm>
#include <thread>

#include "base/check.h"
#include "base/log.h"
#include "coordinator/collective.h"
#include "kernels/cpu/blas_kernel_choice.h"
#include "kernels/cuda/cuda_info.h"
#include "worker/transport/transport_nccl.h"

namespace gptqd {
namespace {

// The device choice must be the same on every rank (a mixed job cannot talk), so
// GPU presence is agreed by all ranks: any rank without a GPU makes the job CPU.
bool every_rank_has_gpu(MPI_Comm comm) {
  int mine = cuda_device_count() > 0 ? 1 : 0, all = 0;
  allreduce_polled(&mine, &all, 1, MPI_INT, MPI_MIN, comm);
  return all == 1;
}

}  // namespace

Execution::Execution(const std::string& device, int threads, MPI_Comm comm,
                     const std::string& transport) {
  // The settings alone: the same verdict on every rank, before any collective.
  GPTQD_INPUT_CHECK(device != "cpu" || transport != "nccl",
                    "parallel.transport: nccl needs the cuda backend, but parallel.device is cpu; "
                    "use auto or mpi");
#ifndef GPTQD_WITH_CUDA
  GPTQD_INPUT_CHECK(transport != "nccl",
                    "parallel.transport: nccl, but this gptqd was built without CUDA and NCCL "
                    "(configure with -DGPTQD_CUDA=ON); use auto or mpi");
#endif
  const bool gpus = device != "cpu" && every_rank_has_gpu(comm);
  GPTQD_INPUT_CHECK(device != "cuda" || gpus,
                    "parallel.device: cuda requested but not every rank has a CUDA device");
  GPTQD_INPUT_CHECK(gpus || transport != "nccl",
                    "parallel.transport: nccl needs the cuda backend, but not every rank has a "
                    "CUDA device (parallel.device: auto chose the CPU); use auto or mpi");
  if (!gpus) {
    be_ = make_cpu_backend(threads);
    const int cores = cpu_cores_available();
    if (threads > cores)
      GPTQD_LOG_WARN(
          "{} threads on {} core(s): the rank's affinity mask (mpirun binds each rank to one core "
          "by default with up to 2 ranks) holds fewer cores than threads, which then take turns; "
          "give the rank its cores (mpirun --bind-to none, or --map-by slot:PE={}; srun "
          "--cpus-per-task={}) or set --threads {}",
          threads, cores, threads, threads, cores);
    transport_ = make_mpi_transport(comm);
    transport_name_ = "mpi";
    return;
  }
  on_gpu_ = true;
  if (transport == "mpi") {
    // Ranks may share a GPU: NCCL is not involved, and MPI moves host copies.
    be_ = make_cuda_backend(select_local_device(comm, /*share=*/true));
    transport_ = make_staged_transport(make_mpi_transport(comm), *be_, cuda_device_memory);
    transport_name_ = "mpi";
    return;
  }
  be_ = make_cuda_backend(select_local_device(comm));
  const std::string shared = shared_gpu(comm, cuda_backend_device(*be_));
  GPTQD_INPUT_CHECK(shared.empty(),
                    "parallel.transport: {} uses NCCL on cuda, which needs one GPU per rank, but "
                    "{}; set parallel.transport: mpi to share GPUs",
                    transport, shared);
  nccl_ = std::make_unique<NcclComm>(comm, *be_);
  transport_ = make_nccl_transport(*nccl_);
  transport_name_ = "nccl";
}

Execution::~Execution() = default;

int threads_per_rank(int requested, MPI_Comm comm) {
  if (requested > 0) return requested;
  const int node = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int bound = cpu_cores_available();
  // A rank bound to fewer cores than the node's (mpirun's --bind-to, srun's --cpu-bind) fills
  // those; an unbound one takes its share of the node.
  if (bound < node) return bound;
  return std::max(1, node / local_rank_count(comm));
}

void log_backend_libraries(const Backend& be) {
  const std::string threading = be.threading();
  if (!threading.empty()) GPTQD_LOG_INFO("threads on rank 0: {}", threading);
  const std::string choice = cpu::blas_kernel_choice_note();
  if (!choice.empty()) GPTQD_LOG_INFO("{}", choice);
  const std::string warning = be.kernel_warning();
  if (!warning.empty()) GPTQD_LOG_WARN("{}", warning);
}

}  // namespace gptqd
