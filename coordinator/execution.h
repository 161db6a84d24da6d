// Where a rank computes and how it talks to other stages: one choice shared by
// every command (quantize, eval). parallel.device cpu -> the CPU backend; cuda (or
// auto with a GPU) -> the CUDA backend on this rank's local GPU (chosen from
// hostname hashes, as nccl-tests does). parallel.transport between stages: auto ->
// NCCL on cuda, MPI on cpu; nccl -> NCCL (only on cuda, one GPU per rank); mpi ->
// MPI, through host memory on cuda (ranks may then share a GPU).
#pragma once

#include <mpi.h>

#include <memory>
#include <string>

#include "kernels/backend.h"
#include "worker/transport/transport.h"

namespace gptqd {

class NcclComm;

class Execution {
 public:
  // Collective over comm (the CUDA path with NCCL joins every rank into one NCCL
  // communicator). device and transport are parallel.device and parallel.transport (pass
  // the job's: "auto" is only the key's default); threads: CPU threads for the CPU backend.
  // InputError, the same on every rank and before any work, when cuda is asked for and no GPU is
  // there, when nccl is asked for on the CPU backend or in a build without NCCL, and when NCCL
  // would get two ranks on one GPU.
  Execution(const std::string& device, int threads, MPI_Comm comm,
            const std::string& transport = "auto");
  ~Execution();
  Execution(const Execution&) = delete;
  Execution& operator=(const Execution&) = delete;

  Backend& backend() { return *be_; }
  Transport& transport() { return *transport_; }
  bool on_gpu() const { return on_gpu_; }
  // "nccl" or "mpi": the transport chosen.
  const std::string& transport_name() const { return transport_name_; }

 private:
  std::unique_ptr<Backend> be_;
  std::unique_ptr<NcclComm> nccl_;
  std::unique_ptr<Transport> transport_;
  bool on_gpu_ = false;
  std::string transport_name_;
};

// CPU threads per rank: `requested` when > 0; else the cores of the rank's affinity mask when
// it is bound to fewer than the node's (cpu_cores_available()), else the node's cores shared by
// its ranks.
int threads_per_rank(int requested, MPI_Comm comm);

// Logs, once (rank 0 calls it), what the backend's libraries really run: the threading line and,
// when the BLAS kernels are narrower than the CPU, the warning that says so.
void log_backend_libraries(const Backend& be);

}  // namespace gptqd
