// `gptqd quantize CONFIG`: the whole job on every rank of a communicator.
#pragma once

#include <mpi.h>

#include <string>

namespace gptqd {

struct QuantizeOptions {
  std::string config_path;
  bool restart = false;  // discard an existing checkpoint instead of resuming it
  int threads = 0;       // CPU threads per rank; 0 = cores / ranks on the node
  bool print_report = true;
};

// Collective over comm. Returns the process exit code: 0 done, 1 bad input (every
// rank returns 1, one line logged, nothing written). Errors after the checkpoint
// exists are thrown: the caller aborts the job (the checkpoint keeps every block
// that was complete, and a rerun resumes).
int run_quantize(const QuantizeOptions& opt, MPI_Comm comm);

}  // namespace gptqd
