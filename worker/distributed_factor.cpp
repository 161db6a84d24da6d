#include "worker/distributed_factor.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstddef>
#include <vector>

#include "kernels/check.h"

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
int numroc_(const int* n, const int* nb, const int* iproc, const int* isrcproc, const int* nprocs);
void descinit_(int* desc, const int* m, const int* n, const int* mb, const int* nb,
               const int* irsrc, const int* icsrc, const int* ictxt, const int* lld, int* info);
void pdpotrf_(const char* uplo, const int* n, double* a, const int* ia, const int* ja,
              const int* desca, int* info, size_t uplo_len);
void pstrtri_(const char* uplo, const char* diag, const int* n, float* a, const int* ia,
              const int* ja, const int* desca, int* info, size_t uplo_len, size_t diag_len);
}

namespace gptqd {
namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The smallest block block_for chooses (unless the configured one is smaller): below it the
// per-block overheads dominate.
constexpr int kMinBlock = 16;

// Elements per MPI call, below INT32_MAX.
constexpr int64_t kMpiChunk = int64_t{1} << 30;

// Global index of local index l on process coordinate p of `procs`, blocks of nb from
// process 0 (the distribution every descriptor here uses).
int64_t global_index(int64_t l, int nb, int p, int procs) {
  return (l / nb * procs + p) * nb + l % nb;
}

int local_count(int n, int nb, int p, int procs) {
  const int zero = 0;
  return numroc_(&n, &nb, &p, &zero, &procs);
}

}  // namespace

ScalapackFactorizer::ScalapackFactorizer(MPI_Comm comm, int block) : comm_(comm), nb_(block) {
  GPTQD_CHECK(block >= 1, "ScaLAPACK block size {}", block);
  MPI_Comm_size(comm_, &size_);
  MPI_Comm_rank(comm_, &rank_);
  // The grid as square as the size allows: the most rows that divide it, up to its root.
  nprow_ = 1;
  for (int r = 1; r * r <= size_; ++r)
    if (size_ % r == 0) nprow_ = r;
  npcol_ = size_ / nprow_;
  // The BLACS's own state (it reads MPI_COMM_WORLD; MPI is already initialised, so it only
  // records it), then a context over `comm` alone.
  int me = 0, procs = 0;
  Cblacs_pinfo(&me, &procs);
  handle_ = Csys2blacs_handle(comm_);
  context_ = handle_;
  Cblacs_gridinit(&context_, "Row", nprow_, npcol_);
  int rows = 0, cols = 0;
  Cblacs_gridinfo(context_, &rows, &cols, &myrow_, &mycol_);
  GPTQD_CHECK(rows == nprow_ && cols == npcol_ && myrow_ >= 0 && mycol_ >= 0,
              "BLACS grid {} x {} over {} processes: got {} x {}, this one at ({}, {})", nprow_,
              npcol_, size_, rows, cols, myrow_, mycol_);
}

int ScalapackFactorizer::block_for(int64_t n) const {
  // At least two blocks per process row and column, so small layers are spread too.
  const int64_t spread = (n + 2 * std::max(nprow_, npcol_) - 1) / (2 * std::max(nprow_, npcol_));
  return static_cast<int>(std::clamp<int64_t>(spread, std::min(nb_, kMinBlock), nb_));
}

ScalapackFactorizer::~ScalapackFactorizer() {
  Cblacs_gridexit(context_);
  Cfree_blacs_system_handle(handle_);
}

bool ScalapackFactorizer::inverse_cholesky_upper(int64_t n64, float* h) {
  seconds_ = ScalapackSeconds{};
  if (n64 <= 0) return true;
  GPTQD_CHECK(n64 <= INT_MAX, "ScaLAPACK factorization of order {}: above its 32-bit indices", n64);
  const int n = static_cast<int>(n64);
  const int nb = block_for(n64);
  const int mloc = local_count(n, nb, myrow_, nprow_);
  const int nloc = local_count(n, nb, mycol_, npcol_);
  const int64_t local = static_cast<int64_t>(mloc) * nloc;
  GPTQD_CHECK(local <= INT_MAX,
              "ScaLAPACK factorization of order {} on a {} x {} grid: a part of {} x {} "
              "elements is above its 32-bit indices (more replicas per stage split it further)",
              n, nprow_, npcol_, mloc, nloc);
  const int lld = std::max(1, mloc);
  const int zero = 0, one = 1;
  int desc[9];
  int info = 0;
  descinit_(desc, &n, &n, &nb, &nb, &zero, &zero, &context_, &lld, &info);
  GPTQD_CHECK(info == 0, "ScaLAPACK descinit: argument {} is invalid", -info);

  // 1. This process's part of A = J H J, column-major: A(i, j) = H(n-1-i, n-1-j), read as the
  //    CPU backend reads it (the row-major buffer reversed) so both factor the same numbers.
  auto t0 = Clock::now();
  std::vector<double> a(static_cast<size_t>(std::max<int64_t>(local, 1)));
  for (int lj = 0; lj < nloc; ++lj) {
    const int64_t j = global_index(lj, nb, mycol_, npcol_);
    const float* src = h + (n64 - 1 - j) * n64 + (n64 - 1);  // H(n-1-j, n-1-i) at src[-i]
    double* dst = a.data() + static_cast<int64_t>(lj) * lld;
    for (int li = 0; li < mloc; ++li) dst[li] = src[-global_index(li, nb, myrow_, nprow_)];
  }
  seconds_.scatter = since(t0);

  // 2. A = R^T R in float64. Every process learns the outcome (the allreduce also keeps a
  //    process from returning while another one reports something else).
  t0 = Clock::now();
  pdpotrf_("U", &n, a.data(), &one, &one, desc, &info, 1);
  GPTQD_CHECK(info >= 0, "ScaLAPACK pdpotrf: argument {} is invalid", -info);
  int failed = info;
  MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_MAX, comm_);
  seconds_.potrf = since(t0);
  if (failed != 0) return false;

  // 3. R rounded to float32 and inverted in float32, as the CPU backend does.
  t0 = Clock::now();
  std::vector<float> r(a.begin(), a.end());
  a = std::vector<double>();
  pstrtri_("U", "N", &n, r.data(), &one, &one, desc, &info, 1, 1);
  GPTQD_CHECK(info >= 0, "ScaLAPACK pstrtri: argument {} is invalid", -info);
  failed = info;
  MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_MAX, comm_);
  seconds_.trtri = since(t0);
  if (failed != 0) return false;

  // 4. Every process's part to every process (one broadcast each, in chunks), each written
  //    into U: U[n-1-j][n-1-i] = R^-1(i, j) for i <= j, zero below the diagonal (i > j), so
  //    every element of h is written once.
  t0 = Clock::now();
  std::vector<int> coords(static_cast<size_t>(2 * size_));
  const int mine[2] = {myrow_, mycol_};
  MPI_Allgather(mine, 2, MPI_INT, coords.data(), 2, MPI_INT, comm_);
  std::vector<float> part;
  for (int p = 0; p < size_; ++p) {
    const int prow = coords[2 * p], pcol = coords[2 * p + 1];
    const int pm = local_count(n, nb, prow, nprow_), pn = local_count(n, nb, pcol, npcol_);
    const int64_t count = static_cast<int64_t>(pm) * pn;
    const float* src = r.data();
    if (p != rank_) {
      part.resize(static_cast<size_t>(count));
      src = part.data();
    }
    float* buf = p == rank_ ? r.data() : part.data();
    for (int64_t off = 0; off < count; off += kMpiChunk) {
      const int c = static_cast<int>(std::min(kMpiChunk, count - off));
      MPI_Bcast(buf + off, c, MPI_FLOAT, p, comm_);
    }
    const int pld = std::max(1, pm);
    for (int lj = 0; lj < pn; ++lj) {
      const int64_t j = global_index(lj, nb, pcol, npcol_);
      float* dst = h + (n64 - 1 - j) * n64 + (n64 - 1);  // U[n-1-j][n-1-i] at dst[-i]
      const float* col = src + static_cast<int64_t>(lj) * pld;
      for (int li = 0; li < pm; ++li) {
        const int64_t i = global_index(li, nb, prow, nprow_);
        dst[-i] = i <= j ? col[li] : 0.0f;
      }
    }
  }
  seconds_.gather = since(t0);
  return true;
}

}  // namespace gptqd
