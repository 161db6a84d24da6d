// bench/distributed_factor: the factorization GPTQ needs (damped H -> U with H^-1 = U^T U),
// replicated against distributed (parallel.factorization), in one run under mpirun:
//   replicated   rank 0 alone, the CPU backend's LAPACK path (kernels/cpu/cpu_linalg.cpp),
//                with the threads of one rank and with as many threads as there are ranks
//                (the same cores as the distributed run)
//   distributed  every rank, ScalapackFactorizer (worker/distributed_factor.h), each rank
//                with the threads of one rank; the slowest rank's time
// Prints the wall and CPU times, the ratios (ratio: 1-thread LAPACK wall / ScaLAPACK wall;
// ratioP: P-thread LAPACK wall / ScaLAPACK wall; cpu: LAPACK CPU / the busiest rank's CPU, the
// work one replica is spared), the distributed run's phases on rank 0, how far the two U are
// apart, and how many GPTQ codes of one layer (rows x n, 4-bit, group 128) they give
// identically. On a machine shared with other work, or oversubscribed, run it with
// OMPI_MCA_mpi_yield_when_idle=1: ranks that spin in MPI's waits take the cores the others
// need (docs/distributed-factorization.md).
//
//   mpirun -np 2 build/bench/distributed_factor [--quick] [--sizes 4096,8192] [--threads T]
//       [--block NB] [--reps R] [--rows R] [--no-codes]
// Defaults: n = 4096 and 8192, 1 thread per rank, kScalapackBlock, best of 3, 512 rows.
// --quick: n = 1024 and 2048, 1 repetition. docs/distributed-factorization.md has the figures.
#include "worker/distributed_factor.h"

#include <mpi.h>
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "base/check.h"
#include "base/timing.h"
#include "kernels/backend.h"
#include "kernels/buffer.h"
#include "kernels/cpu/blas_kernel_choice.h"
#include "worker/gptq.h"

namespace gptqd {
namespace {

// CPU seconds (user + system) of this process: the work a rank did, whatever else the machine
// ran meanwhile (wall time on a shared or oversubscribed machine measures the neighbours too).
// MPI's waits count in it when they poll.
double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

struct Args {
  std::vector<int64_t> sizes{4096, 8192};
  int threads = 1, block = kScalapackBlock, reps = 3;
  int64_t rows = 512;
  bool codes = true;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string f = argv[i];
    auto value = [&]() -> std::string {
      GPTQD_INPUT_CHECK(i + 1 < argc, "{} needs a value", f);
      return argv[++i];
    };
    if (f == "--quick") {
      a.sizes = {1024, 2048};
      a.reps = 1;
    } else if (f == "--sizes") {
      a.sizes.clear();
      std::stringstream ss(value());
      for (std::string s; std::getline(ss, s, ',');) a.sizes.push_back(std::stoll(s));
    } else if (f == "--threads") {
      a.threads = std::stoi(value());
    } else if (f == "--block") {
      a.block = std::stoi(value());
    } else if (f == "--reps") {
      a.reps = std::stoi(value());
    } else if (f == "--rows") {
      a.rows = std::stoll(value());
    } else if (f == "--no-codes") {
      a.codes = false;
    } else {
      throw Error("unknown option " + f +
                  " (--quick --sizes N,N --threads T --block NB --reps R --rows R --no-codes)");
    }
  }
  GPTQD_INPUT_CHECK(
      a.threads >= 1 && a.block >= 1 && a.reps >= 1 && a.rows >= 1 && !a.sizes.empty(),
      "threads, block, reps, rows and sizes must be positive");
  return a;
}

// A Hessian-like SPD matrix, H = D (M^T M / k + s^2 I) D: a rank-k mix of k = 256 Gaussian
// factors (the correlated part of a transformer's inputs), a noise floor s = 0.05 and per-feature
// scales D over e^[-1, 1], then the 1% damping GPTQ adds. Made on rank 0 and broadcast, so
// every rank holds the same bytes.
std::vector<float> make_hessian(Backend& be, int64_t n, int rank) {
  std::vector<float> h(static_cast<size_t>(n * n));
  if (rank == 0) {
    const int64_t k = 256;
    std::mt19937_64 gen(1234 + n);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
    std::vector<float> m(static_cast<size_t>(k * n)), d(static_cast<size_t>(n));
    for (auto& v : m) v = normal(gen);
    for (auto& v : d) v = std::exp(uni(gen));
    Buffer md(be, m), hd(be, n * n);
    be.gemm(true, false, n, n, k, 1.0f / static_cast<float>(k), md.data(), n, md.data(), n, 0.0f,
            hd.data(), n);
    h = hd.to_host();
    double mean = 0;
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < n; ++j) h[i * n + j] *= d[i] * d[j];
      h[i * n + i] += 0.0025f * d[i] * d[i];
      mean += h[i * n + i];
    }
    const float damp = static_cast<float>(0.01 * mean / static_cast<double>(n));
    // Exactly symmetric (the gemm's two triangles may differ in the last bit).
    for (int64_t i = 0; i < n; ++i) {
      h[i * n + i] += damp;
      for (int64_t j = 0; j < i; ++j) h[i * n + j] = h[j * n + i];
    }
  }
  for (int64_t off = 0; off < n * n; off += int64_t{1} << 30) {
    const int c = static_cast<int>(std::min<int64_t>(int64_t{1} << 30, n * n - off));
    MPI_Bcast(h.data() + off, c, MPI_FLOAT, 0, MPI_COMM_WORLD);
  }
  return h;
}

// Best of `reps` backend factorizations of h on this rank alone; U left in u.
struct Timing {
  double wall = 1e30, cpu = 0;  // the best repetition's wall time and its CPU time
};

Timing replicated_seconds(Backend& be, const std::vector<float>& h, int64_t n, int reps,
                          std::vector<float>* u) {
  Timing best;
  for (int r = 0; r < reps; ++r) {
    *u = h;
    const auto t0 = SteadyClock::now();
    const double c0 = cpu_seconds();
    GPTQD_CHECK(be.inverse_cholesky_upper(n, u->data()), "LAPACK Cholesky failed at n = {}", n);
    const double wall = seconds_since(t0);
    if (wall < best.wall) best = Timing{wall, cpu_seconds() - c0};
  }
  return best;
}

void run(const Args& a, int rank, int size) {
  auto be = make_cpu_backend(a.threads);
  ScalapackFactorizer fact(MPI_COMM_WORLD, a.block);
  if (rank == 0) {
    std::printf(
        "distributed_factor: %d rank(s), ScaLAPACK grid %d x %d, block %d, %d thread(s) per "
        "rank, best of %d\n",
        size, fact.grid_rows(), fact.grid_cols(), fact.block(), a.threads, a.reps);
    std::printf("%6s %17s %17s %17s %6s %6s %6s  %s\n", "n", "lapack 1t s (cpu)",
                "lapack Pt s (cpu)", "scalapack s (cpu)", "ratio", "ratioP", "cpu",
                "phases (scatter potrf trtri gather) s, U and codes");
  }
  for (const int64_t n : a.sizes) {
    const std::vector<float> h = make_hessian(*be, n, rank);
    std::vector<float> u_ref, u_wide;
    Timing t_ref, t_wide{0, 0};  // t_wide stays 0 with one rank (no wider reference)
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
      t_ref = replicated_seconds(*be, h, n, a.reps, &u_ref);
      if (size > 1) {
        // On every rank's cores. A CPU backend sets OpenBLAS's (process-wide) thread count
        // when it is made: the narrow one is made again after.
        auto wide = make_cpu_backend(a.threads * size);
        t_wide = replicated_seconds(*wide, h, n, a.reps, &u_wide);
        wide.reset();
        be = make_cpu_backend(a.threads);
      }
    }
    MPI_Barrier(MPI_COMM_WORLD);

    std::vector<float> u;
    Timing t_dist;
    FactorSeconds phases;
    for (int r = 0; r < a.reps; ++r) {
      u = h;
      MPI_Barrier(MPI_COMM_WORLD);
      const auto t0 = SteadyClock::now();
      const double c0 = cpu_seconds();
      GPTQD_CHECK(fact.inverse_cholesky_upper(n, u.data()), "ScaLAPACK Cholesky failed at n = {}",
                  n);
      // The slowest rank's wall time; the largest CPU time of a rank.
      double t[2] = {seconds_since(t0), cpu_seconds() - c0};
      MPI_Allreduce(MPI_IN_PLACE, t, 2, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
      if (t[0] < t_dist.wall) {
        t_dist = Timing{t[0], t[1]};
        phases = fact.last_seconds();
      }
    }

    // GPTQ codes of one layer with either U: rank 0 alone, then every rank together (the
    // same W and H, as replicas quantizing the same rows).
    std::string codes = "codes not compared";
    if (a.codes) {
      std::mt19937_64 gen(99 + n);
      std::normal_distribution<float> normal(0.0f, 0.02f);
      std::vector<float> w(static_cast<size_t>(a.rows * n));
      for (auto& v : w) v = normal(gen);
      GptqOptions opt;
      opt.damp_percent = 0;  // make_hessian damped it already
      opt.label = "bench";
      QuantizedLayer q_ref;
      if (rank == 0) q_ref = gptq_quantize(*be, w.data(), a.rows, n, h.data(), opt);
      const QuantizedLayer q = gptq_quantize(*be, w.data(), a.rows, n, h.data(), opt, &fact);
      if (rank == 0) {
        int64_t same = 0;
        for (size_t i = 0; i < q.codes.size(); ++i) same += q.codes[i] == q_ref.codes[i];
        char line[160];
        std::snprintf(line, sizeof line, "codes %.4f%% identical (%lld x %lld), loss %+.2e",
                      100.0 * static_cast<double>(same) / static_cast<double>(q.codes.size()),
                      static_cast<long long>(a.rows), static_cast<long long>(n),
                      q.loss / q_ref.loss - 1);
        codes = line;
      }
    }
    if (rank == 0) {
      double umax = 0, diff = 0;
      int64_t same = 0;
      for (size_t i = 0; i < u.size(); ++i) {
        umax = std::max(umax, static_cast<double>(std::fabs(u_ref[i])));
        diff = std::max(diff, static_cast<double>(std::fabs(u[i] - u_ref[i])));
        same += u[i] == u_ref[i];
      }
      std::printf(
          "%6lld %8.3f (%6.3f) %8.3f (%6.3f) %8.3f (%6.3f) %6.2f %6.2f %6.2f  %.3f %.3f "
          "%.3f %.3f; U max diff %.1e of max |U|, %.2f%% identical; %s\n",
          static_cast<long long>(n), t_ref.wall, t_ref.cpu, t_wide.wall, t_wide.cpu, t_dist.wall,
          t_dist.cpu, t_ref.wall / t_dist.wall, t_wide.wall / t_dist.wall, t_ref.cpu / t_dist.cpu,
          phases.scatter, phases.potrf, phases.trtri, phases.gather, diff / umax,
          100.0 * static_cast<double>(same) / static_cast<double>(u.size()), codes.c_str());
      std::fflush(stdout);
    }
  }
}

}  // namespace
}  // namespace gptqd

int main(int argc, char** argv) {
  gptqd::cpu::choose_blas_kernels(argv);  // the kernels gptqd itself runs
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  try {
    gptqd::run(gptqd::parse(argc, argv), rank, size);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "[rank %d] distributed_factor: %s\n", rank, e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Finalize();
  return 0;
}
