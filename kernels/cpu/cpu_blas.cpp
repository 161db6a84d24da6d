#include "kernels/cpu/cpu_blas.h"

#include <cblas.h>
#include <spdlog/fmt/fmt.h>

namespace gptqd::cpu {

void set_blas_threads(int threads) { openblas_set_num_threads(threads); }

int blas_threads() { return openblas_get_num_threads(); }

BlasThreadsScope::BlasThreadsScope(int threads) : previous_(blas_threads()) {
  if (threads != previous_) set_blas_threads(threads);
}

BlasThreadsScope::~BlasThreadsScope() {
  if (blas_threads() != previous_) set_blas_threads(previous_);
}

std::string blas_corename() { return openblas_get_corename(); }

std::string blas_version() {
  // openblas_get_config(): "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Prescott ...".
  const std::string config = openblas_get_config();
  const size_t second_space = config.find(' ', config.find(' ') + 1);
  return config.substr(0, second_space);
}

std::string blas_library() {
  const std::string version = blas_version();
  const int mode = openblas_get_parallel();  // 0 sequential, 1 pthreads, 2 OpenMP
  const char* build = mode == 0   ? "sequential build"
                      : mode == 1 ? "pthreads build"
                                  : "OpenMP build";
  return fmt::format("{}, {}, {} kernels", version, build, blas_corename());
}

bool blas_is_threaded() { return openblas_get_parallel() != 0; }

}  // namespace gptqd::cpu
