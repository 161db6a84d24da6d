// worker/block_cyclic.h: our NUMROC against ScaLAPACK's own (the independent reference both
// distributed factorizers' descriptors are checked against), the local -> global map visiting
// every global index exactly once, and the block choice for small orders.
#include <gtest/gtest.h>

#include <vector>

#include "worker/block_cyclic.h"

extern "C" int numroc_(const int* n, const int* nb, const int* iproc, const int* isrcproc,
                       const int* nprocs);

namespace gptqd {
namespace {

TEST(BlockCyclic, CountIsScalapacksNumroc) {
  const int zero = 0;
  for (int n : {0, 1, 15, 16, 17, 255, 256, 1000, 4097})
    for (int nb : {1, 7, 16, 256})
      for (int procs : {1, 2, 3, 5})
        for (int p = 0; p < procs; ++p)
          EXPECT_EQ(block_cyclic_count(n, nb, p, procs), numroc_(&n, &nb, &p, &zero, &procs))
              << "n " << n << " nb " << nb << " p " << p << " of " << procs;
}

TEST(BlockCyclic, LocalIndicesCoverEveryGlobalIndexOnce) {
  for (int procs : {1, 2, 3}) {
    const int64_t n = 103, nb = 8;
    std::vector<int> seen(n, 0);
    for (int p = 0; p < procs; ++p)
      for (int64_t l = 0; l < block_cyclic_count(n, nb, p, procs); ++l)
        ++seen.at(static_cast<size_t>(block_cyclic_global(l, nb, p, procs)));
    EXPECT_EQ(seen, std::vector<int>(n, 1)) << procs << " processes";
  }
}

TEST(BlockCyclic, SquareGridAndSmallOrderBlocks) {
  EXPECT_EQ(square_grid(1).rows * 10 + square_grid(1).cols, 11);
  EXPECT_EQ(square_grid(6).rows * 10 + square_grid(6).cols, 23);
  EXPECT_EQ(square_grid(7).rows * 10 + square_grid(7).cols, 17);
  const BlockCyclicGrid g = square_grid(4);  // 2 x 2
  EXPECT_EQ(block_cyclic_block(14336, 256, g), 256);
  EXPECT_EQ(block_cyclic_block(384, 256, g), 96);  // ceil(384 / 4)
  EXPECT_EQ(block_cyclic_block(20, 256, g), 16);   // never below 16
  EXPECT_EQ(block_cyclic_block(20, 8, g), 8);      // unless the configured block is smaller
}

}  // namespace
}  // namespace gptqd
