// parallel.factorization: distributed on the CUDA backend: the factorization of
// worker/distributed_factor.h done by cuSOLVERMp (PyPI nvidia-cusolvermp-cu13 0.8.0,
// scripts/get-cusolvermp.sh) on the GPUs of a stage's replicas, once per stage instead of once
// per replica. The same block-cyclic layout (worker/block_cyclic.h), the same host contract
// (HostFactorizer: the whole H in, the whole U out on every replica) and the precision of the
// CUDA backend's own factorization (kernels/cuda/cuda_cholesky.cu): the Cholesky
// L L^T = J H J in float64 (cusolverMpPotrf) and L^-T in float64, rounded to float32 at the
// end. cuSOLVERMp has no triangular inverse: L^-T comes from cusolverMpPotrs with L itself as
// the n right-hand sides (A X = L gives X = L^-T; 2 n^3 flops instead of trtri's n^3 / 3,
// split over the GPUs).
//
// Each replica needs a GPU of its own (NCCL refuses two ranks on one GPU). The communicator is
// this factorizer's own NCCL communicator over the MPI one, made collectively at construction.
// This header names no CUDA type; in a build without cuSOLVERMp (cusolvermp_built() false)
// the constructor throws gptqd::Error.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <memory>
#include <string>

#include "worker/block_cyclic.h"
#include "worker/gptq.h"

namespace gptqd {

// Whether this gptqd was built with cuSOLVERMp (CMake GPTQD_CUSOLVERMP).
bool cusolvermp_built();
// Whether its library loads here (it is dlopen'ed: $GPTQD_CUSOLVERMP_LIB, the path built
// against, the loader's search path); false with the loader's reason in *why otherwise, and
// in a build without it. Not collective.
bool cusolvermp_loadable(std::string* why);

// Square block of the block-cyclic distribution on the GPU: the ScaLAPACK block, not measured
// on a GPU yet (none has run this code; docs/distributed-factorization.md).
constexpr int kCusolverMpBlock = 256;

class CusolverMpFactorizer final : public HostFactorizer {
 public:
  // Collective over `comm` (not owned; must outlive this object): a grid_rows() x grid_cols()
  // = size of comm grid of GPUs, as square as the size allows, this process on `device` (its
  // CUDA backend's device, cuda_backend_device). block >= 1.
  CusolverMpFactorizer(MPI_Comm comm, int device, int block = kCusolverMpBlock);
  ~CusolverMpFactorizer() override;
  CusolverMpFactorizer(const CusolverMpFactorizer&) = delete;
  CusolverMpFactorizer& operator=(const CusolverMpFactorizer&) = delete;

  // HostFactorizer's contract, collective over comm; false on every process when the Cholesky
  // fails. Throws gptqd::Error on a CUDA or cuSOLVERMp error (out of device memory among them)
  // and when the solve's result fails its check (X's diagonal against 1 / L's). Device memory:
  // two float64 parts of about n^2 / size elements (16 n^2 / size bytes) and the library's
  // workspace, allocated after trimming the backend's pool; with the U of 4 n^2 the backend
  // then holds, within the replicated path's 12 n^2 that the memory model counts for any
  // size >= 2.
  bool inverse_cholesky_upper(int64_t n, float* h) override;

  int grid_rows() const;
  int grid_cols() const;
  int block() const;
  const FactorSeconds& last_seconds() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gptqd
