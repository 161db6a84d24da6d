// The NCCL communicator in one process (the gtest binary's MPI world of one
// rank): bootstrap, the collectives, and the argument checks. Exchanges
// between ranks (send/recv, a dead peer's timeout) need several processes and
// GPUs; see docs/gpu.md for what has been run. Skipped, visibly, without a GPU.
#include <gtest/gtest.h>
#include <mpi.h>

#include <vector>

#include "kernels/backend.h"
#include "kernels/buffer.h"
#include "base/check.h"
#include "kernels/cuda/cuda_info.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/test_util.h"
#include "worker/transport/transport_nccl.h"

namespace gptqd {
namespace {

using test::random_vector;

class NcclOneRank : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
    int world = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    if (world != 1) GTEST_SKIP() << "single-process test, run under " << world << " ranks";
  }
};

TEST_F(NcclOneRank, LocalRankAndDevice) {
  const LocalRank local = local_rank_of(MPI_COMM_WORLD);
  EXPECT_EQ(local.rank, 0);
  EXPECT_EQ(local.size, 1);
  EXPECT_EQ(select_local_device(MPI_COMM_WORLD), 0);
}

TEST_F(NcclOneRank, CollectivesOnOneRankAreIdentities) {
  auto be = make_cuda_backend(select_local_device(MPI_COMM_WORLD));
  EXPECT_EQ(cuda_backend_device(*be), 0);
  NcclComm comm(MPI_COMM_WORLD, *be, 60);
  EXPECT_EQ(comm.rank(), 0);
  EXPECT_EQ(comm.size(), 1);

  const auto host = random_vector(10007, 1);
  Buffer data(*be, host);
  be->fill(data.data(), 3.0f, 10);  // queued before the allreduce on the same stream
  comm.allreduce_sum(data.data(), data.size());
  auto expect = host;
  for (int i = 0; i < 10; ++i) expect[i] = 3.0f;
  EXPECT_EQ(data.to_host(), expect);

  Buffer gathered(*be, 2 * 10007);
  comm.allgather(data.data(), gathered.data() + 5000, 10007);
  const auto got = gathered.to_host();
  EXPECT_EQ(std::vector<float>(got.begin() + 5000, got.begin() + 15007), expect);
  EXPECT_EQ(got[4999], 0.0f);
  EXPECT_EQ(got[15007], 0.0f);
}

TEST_F(NcclOneRank, RejectsABadPeerAndANonCudaBackend) {
  auto be = make_cuda_backend(select_local_device(MPI_COMM_WORLD));
  NcclComm comm(MPI_COMM_WORLD, *be, 60);
  Buffer data(*be, 16);
  auto transport = make_nccl_transport(comm);
  EXPECT_THROW(transport->send(data.data(), 16, 0, Tag::kActivations), Error);  // itself
  EXPECT_THROW(transport->recv(data.data(), 16, 1, Tag::kActivations), Error);  // no rank 1
  auto cpu = make_cpu_backend(1);
  EXPECT_THROW(NcclComm(MPI_COMM_WORLD, *cpu, 60), Error);
}

}  // namespace
}  // namespace gptqd
