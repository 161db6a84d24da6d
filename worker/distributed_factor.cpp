#include "worker/distributed_factor.h"

#include <algorithm>
#include <climits>
#include <vector>

#include "base/check.h"
#include "base/timing.h"
#include "worker/transport/liveness.h"
#include "worker/transport/transport.h"

// ScaLAPACK and its BLACS (Debian libscalapack-openmpi-dev) ship no C header. The routines
// are Fortran: arguments by pointer, and gfortran's hidden length of each CHARACTER argument
// (size_t, after the others). The BLACS C interface (Cblacs_*) takes values.
extern "C" {
void Cblacs_pinfo(int* mypnum, int* nprocs);
int Csys2blacs_handle(MPI_Comm comm);
void Cfree_blacs_system_handle(int handle);
void Cblacs_gridinit(int* context, const char* order, int nprow, int npcol);
void Cblacs_gridinfo(int context, int* nprow, int* npcol, int* myrow, int* mycol);
void Cblacs_gridexit(int context);
void descinit_(int* desc, const int* m, const int* n, const int* mb, const int* nb,
               const int* irsrc, const int* icsrc, const int* ictxt, const int* lld, int* info);
void pdpotrf_(const char* uplo, const int* n, double* a, const int* ia, const int* ja,
              const int* desca, int* info, size_t uplo_len);
void pstrtri_(const char* uplo, const char* diag, const int* n, float* a, const int* ia,
              const int* ja, const int* desca, int* info, size_t uplo_len, size_t diag_len);
}

namespace gptqd {
ScalapackFactorizer::ScalapackFactorizer(MPI_Comm comm, int block) : comm_(comm), nb_(block) {
  GPTQD_CHECK(block >= 1, "ScaLAPACK block size {}", block);
  int size = 1;
  MPI_Comm_size(comm_, &size);
  grid_ = square_grid(size);
  // The BLACS's own state (it reads MPI_COMM_WORLD; MPI is already initialised, so it only
  // records it), then a context over `comm` alone.
  int me = 0, procs = 0;
  Cblacs_pinfo(&me, &procs);
  handle_ = Csys2blacs_handle(comm_);
  context_ = handle_;
  Cblacs_gridinit(&context_, "Row", grid_.rows, grid_.cols);
  int rows = 0, cols = 0;
  Cblacs_gridinfo(context_, &rows, &cols, &grid_.row, &grid_.col);
  GPTQD_CHECK(rows == grid_.rows && cols == grid_.cols && grid_.row >= 0 && grid_.col >= 0,
              "BLACS grid {} x {} over {} processes: got {} x {}, this one at ({}, {})", grid_.rows,
              grid_.cols, size, rows, cols, grid_.row, grid_.col);
}

ScalapackFactorizer::~ScalapackFactorizer() {
  Cblacs_gridexit(context_);
  Cfree_blacs_system_handle(handle_);
}

bool ScalapackFactorizer::inverse_cholesky_upper(int64_t n64, float* h) {
  seconds_ = FactorSeconds{};
  if (n64 <= 0) return true;
  GPTQD_CHECK(n64 <= INT_MAX, "ScaLAPACK factorization of order {}: above its 32-bit indices", n64);
  const int n = static_cast<int>(n64);
  const int nb = static_cast<int>(block_cyclic_block(n64, nb_, grid_));
  const int64_t mloc = block_cyclic_count(n, nb, grid_.row, grid_.rows);
  const int64_t nloc = block_cyclic_count(n, nb, grid_.col, grid_.cols);
  GPTQD_CHECK(mloc * nloc <= INT_MAX,
              "ScaLAPACK factorization of order {} on a {} x {} grid: a part of {} x {} "
              "elements is above its 32-bit indices (more replicas per stage split it further)",
              n, grid_.rows, grid_.cols, mloc, nloc);
  const int lld = static_cast<int>(std::max<int64_t>(1, mloc));
  const int zero = 0, one = 1;
  int desc[9];
  int info = 0;
  descinit_(desc, &n, &n, &nb, &nb, &zero, &zero, &context_, &lld, &info);
  GPTQD_CHECK(info == 0, "ScaLAPACK descinit: argument {} is invalid", -info);

  // ScaLAPACK and the collectives below wait inside MPI: every process arrives first (a
  // sleeping wait under the job's liveness rule), and the rest is a BlockingSection
  // (worker/transport/liveness.h).
  MPI_Request arrival;
  MPI_Ibarrier(comm_, &arrival);
  GPTQD_CHECK(mpi_wait_yielding(&arrival, MPI_STATUS_IGNORE) == MPI_SUCCESS,
              "the replicas' barrier before the factorization failed");
  const BlockingSection busy("the replicas' distributed factorization (ScaLAPACK)");

  // 1. This process's part of A = J H J in float64.
  auto t0 = SteadyClock::now();
  std::vector<double> a = reversed_local_part(h, n64, nb, grid_);
  seconds_.scatter = seconds_since(t0);

  // 2. A = R^T R in float64. Every process learns the outcome (the allreduce also keeps a
  //    process from returning while another one reports something else).
  t0 = SteadyClock::now();
  pdpotrf_("U", &n, a.data(), &one, &one, desc, &info, 1);
  GPTQD_CHECK(info >= 0, "ScaLAPACK pdpotrf: argument {} is invalid", -info);
  int failed = info;
  MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_MAX, comm_);
  seconds_.potrf = seconds_since(t0);
  if (failed != 0) return false;

  // 3. R rounded to float32 and inverted in float32, as the CPU backend does.
  t0 = SteadyClock::now();
  std::vector<float> r(a.begin(), a.end());
  a = std::vector<double>();
  pstrtri_("U", "N", &n, r.data(), &one, &one, desc, &info, 1, 1);
  GPTQD_CHECK(info >= 0, "ScaLAPACK pstrtri: argument {} is invalid", -info);
  failed = info;
  MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_MAX, comm_);
  seconds_.trtri = seconds_since(t0);
  if (failed != 0) return false;

  // 4. Every process's part to every process, U assembled on each.
  t0 = SteadyClock::now();
  gather_reversed_upper(comm_, grid_, n64, nb, r, h);
  seconds_.gather = seconds_since(t0);
  return true;
}

}  // namespace gptqd
