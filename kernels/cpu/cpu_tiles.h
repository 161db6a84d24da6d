// How the CPU backend splits a product into BLAS calls for its threads (cpu_linalg.cpp). The
// tiles are a function of the shape alone, never of the thread count: every element of the
// result is summed by the same single-threaded BLAS call in the same order whatever the number
// of threads, so results are bit-identical for any thread count, whichever BLAS and whichever
// of its kernels (some pick one by the size of the call).
#pragma once

#include <cstdint>

namespace gptqd::cpu {

struct GemmTiles {
  int64_t rows, cols;        // extent of a tile; the last row and column of tiles may be shorter
  int64_t count_m, count_n;  // tiles along m and along n
};

// The tiles of C [m, n] = op(A) [m, k] op(B) [k, n]: one tile (one BLAS call) for a small
// product, more as it grows (cpu_linalg.cpp says how many and why).
GemmTiles gemm_tiles(int64_t m, int64_t n, int64_t k);

// The extent of the square tiles of H [d, d] = X^T X for X [n, d] (the upper triangle's tiles:
// SSYRK on the diagonal, SGEMM above it).
int64_t xtx_tile(int64_t d, int64_t n);

}  // namespace gptqd::cpu
