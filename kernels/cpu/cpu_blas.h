// The BLAS library's own threads. The CPU backend keeps OpenBLAS at one thread: its GEMMs,
// X^T X and attention are split into BLAS calls of their own that its threads run
// (cpu_parallel.h), which works the same with any build of the library (Debian installs a
// pthreads build, an OpenMP build or a sequential one as libopenblas.so.0) and keeps results
// independent of the thread count. Only the LAPACK factorizations of order
// kThreadedFactorOrder and more, which gptqd does not split, run on the library's threads,
// inside a BlasThreadsScope.
#pragma once

#include <cstdint>
#include <string>

namespace gptqd::cpu {

// The smallest order whose factorization runs on the BLAS's threads. After a threaded call
// OpenBLAS's idle workers spin (sched_yield) for a while before they sleep, taking cores from
// the backend's own threads: on the quick start's job (--threads 2, orders 256 and 1024) they
// took 17% of the CPU samples, about 55 ms per factorization, more than the threads save on
// orders below a few thousand. Below this order the factorization runs on one thread, and its
// result is then the same for any thread count; from it on, OpenBLAS partitions the work by the
// number of threads and the last bits move with it (docs/numerics.md, "Thread count").
constexpr int64_t kThreadedFactorOrder = 2048;

// openblas_set_num_threads / openblas_get_num_threads: process-wide.
void set_blas_threads(int threads);
int blas_threads();

// `threads` BLAS threads inside the scope, the previous count after it. Only on the thread
// that drives the backend, outside a parallel loop (the setting is process-wide).
class BlasThreadsScope {
 public:
  explicit BlasThreadsScope(int threads);
  ~BlasThreadsScope();
  BlasThreadsScope(const BlasThreadsScope&) = delete;
  BlasThreadsScope& operator=(const BlasThreadsScope&) = delete;

 private:
  int previous_;
};

// The library as it reports itself: "OpenBLAS 0.3.21, pthreads build, Prescott kernels".
std::string blas_library();
// openblas_get_corename() ("Cooperlake") and the version ("OpenBLAS 0.3.21").
std::string blas_corename();
std::string blas_version();
// True for a build that can run more than one thread (openblas_get_parallel() != 0).
bool blas_is_threaded();

}  // namespace gptqd::cpu
