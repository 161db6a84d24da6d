// Driver of tests/mpi/distributed_factor.sh: ScalapackFactorizer (worker/distributed_factor.h)
// on every rank of MPI_COMM_WORLD against the CPU backend's factorization on each rank alone.
//   distributed_factor_check BLOCK
// For orders around the block size and across several blocks, on SPD matrices made from the
// same seed on every rank: U upper with a positive diagonal and an exactly zero strictly lower
// part, U^T U H = I within kResidualTol, U within kUTol of the backend's U, the same bytes on
// every rank. A matrix that is not positive definite gives false on every rank. GPTQ with the
// factorizer against GPTQ without: the same damp after retries, codes within kCodesAgree.
// Prints "distributed_factor_check: ok" on rank 0; any failure throws and aborts the job.
#include <mpi.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "base/check.h"
#include "kernels/backend.h"
#include "kernels/cpu/blas_kernel_choice.h"
#include "worker/distributed_factor.h"
#include "worker/gptq.h"

namespace gptqd {
namespace {

// max |U - U_backend| / max |U_backend|: the two differ only in the order of the sums of the
// float64 Cholesky and the float32 triangular inverse; cond(H) ~ 1e3 here.
constexpr double kUTol = 1e-4;
// max |U^T U H - I| (float32 U, matrices of condition ~ 1e3).
constexpr double kResidualTol = 1e-3;
// Share of identical GPTQ codes: a code changes only where a weight sits on a rounding
// boundary within the U difference above.
constexpr double kCodesAgree = 0.995;

// H = B B^T / n + 0.05 I with B n x n Gaussian, per-feature scales over e^[-1, 1]: SPD, row-major,
// exactly symmetric; the same on every rank (same seed, same arithmetic).
std::vector<float> make_spd(int64_t n, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::uniform_real_distribution<double> uni(-1.0, 1.0);
  std::vector<double> b(static_cast<size_t>(n * n)), d(static_cast<size_t>(n));
  for (auto& v : b) v = normal(gen);
  for (auto& v : d) v = std::exp(uni(gen));
  std::vector<float> h(static_cast<size_t>(n * n));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j <= i; ++j) {
      double s = 0;
      for (int64_t k = 0; k < n; ++k) s += b[i * n + k] * b[j * n + k];
      s = s / static_cast<double>(n) + (i == j ? 0.05 : 0.0);
      h[i * n + j] = h[j * n + i] = static_cast<float>(s * d[i] * d[j]);
    }
  return h;
}

void check_factor(Backend& be, ScalapackFactorizer& f, int64_t n, int rank) {
  const std::vector<float> h = make_spd(n, 17 + static_cast<uint64_t>(n));
  std::vector<float> u = h, ref = h;
  GPTQD_CHECK(f.inverse_cholesky_upper(n, u.data()), "n = {}: ScaLAPACK failed on an SPD matrix",
              n);
  GPTQD_CHECK(be.inverse_cholesky_upper(n, ref.data()), "n = {}: LAPACK failed", n);
  double umax = 0, diff = 0;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < n; ++c) {
      const float v = u[r * n + c];
      if (c < r) GPTQD_CHECK(v == 0.0f, "n = {}: U[{}][{}] = {} below the diagonal", n, r, c, v);
      if (c == r) GPTQD_CHECK(v > 0.0f, "n = {}: U[{}][{}] = {} on the diagonal", n, r, r, v);
      umax = std::max(umax, std::fabs(static_cast<double>(ref[r * n + c])));
      diff = std::max(diff, std::fabs(static_cast<double>(v) - ref[r * n + c]));
    }
  GPTQD_CHECK(diff <= kUTol * umax, "n = {}: U differs from LAPACK's by {:.2e} of max |U| (> {})",
              n, diff / umax, kUTol);
  // U^T U H - I in float64: (U^T U)_ij = sum_k<=min(i,j) U_ki U_kj.
  std::vector<double> uu(static_cast<size_t>(n * n), 0.0);
  for (int64_t k = 0; k < n; ++k)
    for (int64_t i = k; i < n; ++i)
      for (int64_t j = k; j < n; ++j)
        uu[i * n + j] += static_cast<double>(u[k * n + i]) * u[k * n + j];
  double resid = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t k = 0; k < n; ++k) s += uu[i * n + k] * h[k * n + j];
      resid = std::max(resid, std::fabs(s - (i == j ? 1.0 : 0.0)));
    }
  GPTQD_CHECK(resid <= kResidualTol, "n = {}: max |U^T U H - I| = {:.2e} (> {})", n, resid,
              kResidualTol);
  // Every rank holds rank 0's bytes.
  std::vector<float> zero = u;
  MPI_Bcast(zero.data(), static_cast<int>(n * n), MPI_FLOAT, 0, MPI_COMM_WORLD);
  int differ = zero != u;
  MPI_Allreduce(MPI_IN_PLACE, &differ, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  GPTQD_CHECK(differ == 0, "n = {}: the ranks hold different U", n);
  if (rank == 0)
    std::printf("n = %4lld: U within %.1e of LAPACK's (max |U|), |U^T U H - I| <= %.1e\n",
                static_cast<long long>(n), diff / umax, resid);
}

void check_not_pd(ScalapackFactorizer& f, int64_t n, int rank) {
  std::vector<float> h = make_spd(n, 5);
  const int64_t bad = n / 2;  // a negative pivot half way: one process finds it
  h[bad * n + bad] = -1.0f;
  const bool ok = f.inverse_cholesky_upper(n, h.data());
  int all = ok;
  MPI_Allreduce(MPI_IN_PLACE, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  GPTQD_CHECK(!ok && all == 0, "n = {}: an indefinite matrix was factorized", n);
  if (rank == 0)
    std::printf("n = %4lld: indefinite matrix refused on every rank\n", static_cast<long long>(n));
}

void check_gptq(Backend& be, ScalapackFactorizer& f, int rank) {
  const int64_t rows = 96, cols = 384;
  std::vector<float> h = make_spd(cols, 3);
  // A negative diagonal entry: the first damp_percent retries fail on both paths alike.
  h[7 * cols + 7] = -0.2f;
  std::mt19937_64 gen(11);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (auto& v : w) v = normal(gen);
  GptqOptions opt;
  opt.group_size = 32;
  opt.act_order = true;
  opt.label = "distributed_factor_check";
  const QuantizedLayer ref = gptq_quantize(be, w.data(), rows, cols, h.data(), opt);
  const QuantizedLayer q = gptq_quantize(be, w.data(), rows, cols, h.data(), opt, &f);
  GPTQD_CHECK(q.damp_used == ref.damp_used && ref.damp_used > opt.damp_percent,
              "damp after retries: {} with ScaLAPACK, {} with LAPACK (configured {})", q.damp_used,
              ref.damp_used, opt.damp_percent);
  int64_t same = 0;
  for (size_t i = 0; i < q.codes.size(); ++i) same += q.codes[i] == ref.codes[i];
  const double share = static_cast<double>(same) / static_cast<double>(q.codes.size());
  GPTQD_CHECK(share >= kCodesAgree, "GPTQ codes: {:.4%} identical (< {:.1%})", share, kCodesAgree);
  GPTQD_CHECK(q.perm == ref.perm && q.g_idx == ref.g_idx, "GPTQ: perm or g_idx differ");
  if (rank == 0)
    std::printf("gptq %lld x %lld, act_order, damp retried to %g: %.4f%% codes identical\n",
                static_cast<long long>(rows), static_cast<long long>(cols), q.damp_used,
                100 * share);
}

void run(int block, int rank) {
  auto be = make_cpu_backend(1);
  ScalapackFactorizer f(MPI_COMM_WORLD, block);
  if (rank == 0) std::printf("grid %d x %d, block %d\n", f.grid_rows(), f.grid_cols(), f.block());
  for (int64_t n : {int64_t{1}, int64_t{5}, int64_t{block - 1 > 0 ? block - 1 : 1}, int64_t{block},
                    int64_t{block + 1}, int64_t{3 * block + 7}, int64_t{300}})
    check_factor(*be, f, n, rank);
  check_not_pd(f, 3 * block + 7, rank);
  check_gptq(*be, f, rank);
  if (rank == 0) std::printf("distributed_factor_check: ok\n");
}

}  // namespace
}  // namespace gptqd

int main(int argc, char** argv) {
  gptqd::cpu::choose_blas_kernels(argv);  // the kernels gptqd itself runs
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  try {
    GPTQD_INPUT_CHECK(argc == 2, "usage: distributed_factor_check BLOCK");
    gptqd::run(std::atoi(argv[1]), rank);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "[rank %d] distributed_factor_check: %s\n", rank, e.what());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Finalize();
  return 0;
}
