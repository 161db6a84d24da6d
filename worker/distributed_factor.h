// parallel.factorization: distributed (DESIGN.md §3 step 4b). The R replicas of a stage hold
// the same summed Hessian of each layer; with `replicated` every one of them factorizes it
// (2/3 n^3 flops each, the same work R times). Here they factorize it once, together, with
// ScaLAPACK on a 2D block-cyclic grid over the stage's communicator, and every replica gets
// the whole U back for its row-split sweep (docs/distributed-factorization.md).
//
// The math and the precision are the CPU backend's (kernels/cpu/cpu_linalg.cpp): the Cholesky
// R^T R = J H J in float64 (pdpotrf), R rounded to float32 and inverted in float32 (pstrtri),
// U = J R^-T J. Only the blocking, hence the order of the sums, differs.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <memory>

#include "worker/block_cyclic.h"
#include "worker/gptq.h"

namespace gptqd {

// Square block of the block-cyclic distribution (rows = columns). ScaLAPACK's Cholesky
// factorizes each diagonal block on one process and broadcasts it, once per block column:
// smaller blocks balance the work over more processes, larger ones mean fewer of those
// synchronising steps and local GEMMs at a better rate. Measured at n = 4096 on 2 ranks
// (bench/distributed_factor, a shared 2-core machine): 64: 14.8 s, 128: 13.5 s, 256: 9.4 s,
// 512: 8.5 s. 256 keeps n / 256 >= 14 block columns per process column at BLOOM's n = 14336
// on a 2 x 4 grid (8 replicas), where 512 would leave 7.
constexpr int kScalapackBlock = 256;

class ScalapackFactorizer final : public HostFactorizer {
 public:
  // Collective over `comm` (not owned; must outlive this object): a BLACS grid of
  // grid_rows() x grid_cols() = size of comm processes, as square as the size allows
  // (grid_rows() <= grid_cols()). block >= 1.
  explicit ScalapackFactorizer(MPI_Comm comm, int block = kScalapackBlock);
  ~ScalapackFactorizer() override;
  ScalapackFactorizer(const ScalapackFactorizer&) = delete;
  ScalapackFactorizer& operator=(const ScalapackFactorizer&) = delete;

  // HostFactorizer's contract, collective over comm. Every process reads its block-cyclic
  // part of h (all of h must be the same on every process), and every process's h holds the
  // whole U on return. False on every process when the Cholesky or the triangular inverse
  // fails. Needs each process's part (about n^2 / size elements) below 2^31 elements
  // (ScaLAPACK's 32-bit indices): n < 65536 on 1 x 2, n < 92682 on 2 x 2, BLOOM-176B's
  // widest layer has n = 57344. Throws gptqd::Error otherwise and on an argument error that
  // ScaLAPACK reports.
  bool inverse_cholesky_upper(int64_t n, float* h) override;

  int grid_rows() const { return grid_.rows; }
  int grid_cols() const { return grid_.cols; }
  // The configured block; order n uses block_cyclic_block(n, block(), grid).
  int block() const { return nb_; }
  const FactorSeconds& last_seconds() const { return seconds_; }

 private:
  MPI_Comm comm_;
  int handle_ = -1, context_ = -1;
  BlockCyclicGrid grid_;
  int nb_;
  FactorSeconds seconds_;
};

}  // namespace gptqd
