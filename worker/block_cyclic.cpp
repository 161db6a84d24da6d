#include "worker/block_cyclic.h"

#include <algorithm>
#include <cstddef>

namespace gptqd {
namespace {

// The smallest block block_cyclic_block chooses (unless the configured one is smaller): below
// it the per-block overheads dominate.
constexpr int64_t kMinBlock = 16;

// Elements per MPI call, below INT32_MAX.
constexpr int64_t kMpiChunk = int64_t{1} << 30;

}  // namespace

BlockCyclicGrid square_grid(int size) {
  BlockCyclicGrid g;
  for (int r = 1; r * r <= size; ++r)
    if (size % r == 0) g.rows = r;
  g.cols = size / g.rows;
  return g;
}

int64_t block_cyclic_count(int64_t n, int64_t nb, int p, int procs) {
  const int64_t blocks = n / nb;
  int64_t count = blocks / procs * nb;
  const int64_t extra = blocks % procs;
  if (p < extra)
    count += nb;
  else if (p == extra)
    count += n % nb;
  return count;
}

int64_t block_cyclic_block(int64_t n, int64_t block, const BlockCyclicGrid& g) {
  // At least two blocks per process row and column, so small layers are spread too.
  const int64_t most = std::max(g.rows, g.cols);
  const int64_t spread = (n + 2 * most - 1) / (2 * most);
  return std::clamp<int64_t>(spread, std::min(block, kMinBlock), block);
}

std::vector<double> reversed_local_part(const float* h, int64_t n, int64_t nb,
                                        const BlockCyclicGrid& g) {
  const int64_t mloc = block_cyclic_count(n, nb, g.row, g.rows);
  const int64_t nloc = block_cyclic_count(n, nb, g.col, g.cols);
  const int64_t lld = std::max<int64_t>(1, mloc);
  std::vector<double> a(static_cast<size_t>(std::max<int64_t>(mloc * nloc, 1)));
  for (int64_t lj = 0; lj < nloc; ++lj) {
    const int64_t j = block_cyclic_global(lj, nb, g.col, g.cols);
    const float* src = h + (n - 1 - j) * n + (n - 1);  // H(n-1-j, n-1-i) at src[-i]
    double* dst = a.data() + lj * lld;
    for (int64_t li = 0; li < mloc; ++li)
      dst[li] = src[-block_cyclic_global(li, nb, g.row, g.rows)];
  }
  return a;
}

void gather_reversed_upper(MPI_Comm comm, const BlockCyclicGrid& g, int64_t n, int64_t nb,
                           std::vector<float>& mine, float* h) {
  int size = 1, rank = 0;
  MPI_Comm_size(comm, &size);
  MPI_Comm_rank(comm, &rank);
  std::vector<int> coords(static_cast<size_t>(2 * size));
  const int here[2] = {g.row, g.col};
  MPI_Allgather(here, 2, MPI_INT, coords.data(), 2, MPI_INT, comm);
  std::vector<float> part;
  for (int p = 0; p < size; ++p) {
    const int prow = coords[2 * p], pcol = coords[2 * p + 1];
    const int64_t pm = block_cyclic_count(n, nb, prow, g.rows);
    const int64_t pn = block_cyclic_count(n, nb, pcol, g.cols);
    const int64_t count = pm * pn;
    if (p != rank) part.resize(static_cast<size_t>(count));
    float* buf = p == rank ? mine.data() : part.data();
    for (int64_t off = 0; off < count; off += kMpiChunk) {
      const int c = static_cast<int>(std::min(kMpiChunk, count - off));
      MPI_Bcast(buf + off, c, MPI_FLOAT, p, comm);
    }
    const int64_t pld = std::max<int64_t>(1, pm);
    for (int64_t lj = 0; lj < pn; ++lj) {
      const int64_t j = block_cyclic_global(lj, nb, pcol, g.cols);
      float* dst = h + (n - 1 - j) * n + (n - 1);  // U[n-1-j][n-1-i] at dst[-i]
      const float* col = buf + lj * pld;
      for (int64_t li = 0; li < pm; ++li) {
        const int64_t i = block_cyclic_global(li, nb, prow, g.rows);
        dst[-i] = i <= j ? col[li] : 0.0f;
      }
    }
  }
  mine = std::vector<float>();
}

}  // namespace gptqd
