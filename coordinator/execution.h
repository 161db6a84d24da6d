// Where a rank computes and how it talks to other stages: one choice shared by
// every command (quantize, eval). parallel.device cpu -> the CPU backend and MPI;
// cuda (or auto with a GPU) -> the CUDA backend on this rank's local GPU (chosen
// from hostname hashes, as nccl-tests does) and NCCL between stages.
#pragma once

#include <mpi.h>

#include <memory>
#include <string>

#include "kernels/backend.h"
#include "worker/transport.h"

namespace gptqd {

class NcclComm;

class Execution {
 public:
  // Collective over comm (the CUDA path joins every rank into one NCCL communicator).
  // threads: CPU threads for the CPU backend. InputError when cuda is asked for and
  // no GPU is there.
  Execution(const std::string& device, int threads, MPI_Comm comm);
  ~Execution();
  Execution(const Execution&) = delete;
  Execution& operator=(const Execution&) = delete;

  Backend& backend() { return *be_; }
  Transport& transport() { return *transport_; }
  bool on_gpu() const { return on_gpu_; }

 private:
  std::unique_ptr<Backend> be_;
  std::unique_ptr<NcclComm> nccl_;
  std::unique_ptr<Transport> transport_;
  bool on_gpu_ = false;
};

// CPU threads per rank: `requested` when > 0, else the cores of the node shared by its ranks.
int threads_per_rank(int requested, MPI_Comm comm);

}  // namespace gptqd
