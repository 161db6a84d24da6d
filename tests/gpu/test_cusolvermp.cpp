// CusolverMpFactorizer (worker/distributed_factor_gpu.h) on a 1 x 1 grid, the one GPU of a
// device check: U against the CUDA backend's own factorization (cuSOLVER, float64) and the
// CPU twin's, for orders below, at and across several blocks, with the lower part exactly zero;
// an indefinite matrix gives false. Several replicas need several GPUs (NCCL refuses two ranks
// on one), which no device check here has. Skipped, visibly, without a GPU or in a build
// without cuSOLVERMp (the device kit's: docs/gpu.md).
#include <gtest/gtest.h>
#include <mpi.h>

#include <string>
#include <vector>

#include "kernels/cuda/cuda_info.h"
#include "tests/gpu/gpu_test_util.h"
#include "worker/distributed_factor_gpu.h"

namespace gptqd {
namespace {

using test::CudaVsCpu;
using test::expect_close;
using test::spd_matrix;
using test::Twin;

class CusolverMpOneGpu : public CudaVsCpu {
 protected:
  void SetUp() override {
    CudaVsCpu::SetUp();
    if (IsSkipped()) return;
    if (!cusolvermp_built()) GTEST_SKIP() << "built without cuSOLVERMp";
    int world = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    if (world != 1) GTEST_SKIP() << "single-process test, run under " << world << " ranks";
  }
};

TEST_F(CusolverMpOneGpu, SameUAsTheCudaBackendAndTheCpuTwin) {
  for (int block : {16, 64}) {
    CusolverMpFactorizer mp(MPI_COMM_WORLD, cuda_backend_device(*gpu), block);
    ASSERT_EQ(mp.grid_rows() * mp.grid_cols(), 1);
    for (int64_t n : {1, 15, 64, 65, 300}) {
      const std::string what = "n=" + std::to_string(n) + " block " + std::to_string(block);
      const std::vector<float> h = spd_matrix(n, 70 + static_cast<uint32_t>(n), 1e-3f);
      Twin H(*gpu, *cpu, h);
      ASSERT_TRUE(gpu->inverse_cholesky_upper(n, H.gpu.data())) << what;
      ASSERT_TRUE(cpu->inverse_cholesky_upper(n, H.cpu.data())) << what;
      std::vector<float> u = h;
      ASSERT_TRUE(mp.inverse_cholesky_upper(n, u.data())) << what;
      expect_close(u, H.gpu.to_host(), test::kNmseFactor, "vs CUDA backend " + what);
      expect_close(u, H.cpu.to_host(), test::kNmseFactor, "vs CPU " + what);
      for (int64_t r = 0; r < n; ++r) {
        EXPECT_GT(u[r * n + r], 0.0f) << what;
        for (int64_t c = 0; c < r; ++c)
          ASSERT_EQ(u[r * n + c], 0.0f) << what << " " << r << "," << c;
      }
      EXPECT_GE(mp.last_seconds().total(), 0.0);
    }
  }
}

TEST_F(CusolverMpOneGpu, RejectsAnIndefiniteMatrix) {
  CusolverMpFactorizer mp(MPI_COMM_WORLD, cuda_backend_device(*gpu), 16);
  auto h = spd_matrix(40, 40, 1e-3f);
  h[17 * 40 + 17] = -1.0f;
  EXPECT_FALSE(mp.inverse_cholesky_upper(40, h.data()));
}

}  // namespace
}  // namespace gptqd
