// gptqd command line: parses arguments and dispatches to library calls.
#include <mpi.h>

#include <cstdio>
#include <string>
#include <vector>

#include "base/log.h"
#include "commands/cli.h"
#include "coordinator/collective.h"
#include "coordinator/launcher_watch.h"
#include "kernels/cpu/blas_kernel_choice.h"

int main(int argc, char** argv) {
  // First: may re-execute this program with the CPU's widest BLAS kernels.
  gptqd::cpu::choose_blas_kernels(argv);
  // Before MPI_Init: the parent seen now is the launcher (MPI_Init may start helpers).
  gptqd::exit_with_launcher();
  MPI_Init(&argc, &argv);
  int rank = 0, world = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  gptqd::init_logging(rank, world);
  int rc = 0;
  try {
    rc = gptqd::run_cli(std::vector<std::string>(argv + 1, argv + argc), MPI_COMM_WORLD);
  } catch (const std::exception& e) {
    // An error after the job started: other ranks may be inside a collective, so
    // the whole job is ended now rather than left waiting.
    GPTQD_LOG_ERROR("error: {}", gptqd::error_message(e));
    spdlog::default_logger()->flush();
    if (world > 1) MPI_Abort(MPI_COMM_WORLD, 1);
    rc = 1;
  }
  MPI_Finalize();
  return rc;
}
