// gtest main for every test binary: MPI is initialised (the checkpoint uses
// MPI-IO even in one process) and logging carries the rank.
#include <gtest/gtest.h>
#include <mpi.h>

#include "base/log.h"
#include "kernels/cpu/blas_kernel_choice.h"

int main(int argc, char** argv) {
  // The same BLAS kernels as the gptqd these tests compare against.
  gptqd::cpu::choose_blas_kernels(argv);
  MPI_Init(&argc, &argv);
  int rank = 0, world = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  gptqd::init_logging(rank, world);
  ::testing::InitGoogleTest(&argc, argv);
  const int rc = RUN_ALL_TESTS();
  MPI_Finalize();
  return rc;
}
