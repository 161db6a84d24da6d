// The 2D block-cyclic distribution both distributed factorizers use (worker/distributed_factor.h
// on ScaLAPACK, worker/distributed_factor_gpu.h on cuSOLVERMp): square blocks of nb, the first
// on process (0, 0), each process's part column-major with leading dimension max(1, rows).
// Here: the grid, a part's size, the local -> global index map, reading this process's part of
// J H J from the H every replica holds, and gathering every process's part of R^-1 into the
// U that GPTQ needs on every process. The math is in worker/distributed_factor.h.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <vector>

namespace gptqd {

// A process grid of rows x cols = the processes of a communicator, this one at (row, col).
struct BlockCyclicGrid {
  int rows = 1, cols = 1;
  int row = 0, col = 0;
};

// The grid as square as `size` allows: the most rows that divide it, up to its root
// (rows <= cols). Process coordinates are not set.
BlockCyclicGrid square_grid(int size);

// Wall-clock seconds of the last factorization's phases on this process.
struct FactorSeconds {
  double scatter = 0;  // H into this process's block-cyclic part, float64
  double potrf = 0;    // the Cholesky
  double trtri = 0;    // the triangular inverse
  double gather = 0;   // every process's part of R^-1 to every process, U assembled
  double total() const { return scatter + potrf + trtri + gather; }
};

// Elements of a dimension of n in blocks of nb held by process coordinate p of `procs`
// (ScaLAPACK's NUMROC with the first block on process 0).
int64_t block_cyclic_count(int64_t n, int64_t nb, int p, int procs);

// Global index of local index l on process coordinate p of `procs`.
inline int64_t block_cyclic_global(int64_t l, int64_t nb, int p, int procs) {
  return (l / nb * procs + p) * nb + l % nb;
}

// The block both factorizers use for order n: `block`, or below n = 2 * block * max(rows,
// cols) ceil(n / (2 max(rows, cols))) but at least min(block, 16), so every process still
// gets a part of a small matrix (tiny test models). A function of n and the grid only, so the
// same replica count gives the same U.
int64_t block_cyclic_block(int64_t n, int64_t block, const BlockCyclicGrid& g);

// This process's part of A = J H J (A(i, j) = H(n-1-i, n-1-j)) for h [n, n] row-major, in
// float64, column-major with leading dimension max(1, local rows): read as the CPU backend
// reads H (the row-major buffer reversed), so every factorizer factors the same numbers.
std::vector<double> reversed_local_part(const float* h, int64_t n, int64_t nb,
                                        const BlockCyclicGrid& g);

// Collective over comm (whose processes form g, each with its own coordinates): every
// process's part `mine` of R^-1 (upper triangular, float32, laid out as reversed_local_part's)
// to every process, written into h [n, n] row-major as U = J R^-T J: U[n-1-j][n-1-i] =
// R^-1(i, j) for i <= j, zero below the diagonal, so every element of h is written once.
// `mine` is consumed (left empty).
void gather_reversed_upper(MPI_Comm comm, const BlockCyclicGrid& g, int64_t n, int64_t nb,
                           std::vector<float>& mine, float* h);

}  // namespace gptqd
