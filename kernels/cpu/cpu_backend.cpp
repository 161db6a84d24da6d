// CpuBackend: construction, memory and copies.
#include "kernels/cpu/cpu_backend.h"

#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>

#include "base/check.h"
#include "kernels/cpu/cpu_blas.h"
#include "kernels/cpu/cpu_memory.h"
#include "kernels/cpu/cpu_simd.h"

namespace gptqd {
namespace {

void* aligned_zeroed(int64_t count, size_t elem) {
  GPTQD_CHECK(count >= 0, "cpu alloc of a negative count {}", count);
  if (count == 0) return nullptr;
  const size_t bytes = static_cast<size_t>(count) * elem;
  void* p = cpu::alloc_bytes(bytes);
  std::memset(p, 0, bytes);
  return p;
}

}  // namespace

int cpu_cores_available() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

CpuBackend::CpuBackend(int threads) : threads_(threads > 0 ? threads : cpu_cores_available()) {
  // Every BLAS call of the backend's ops runs on one of its threads, single threaded
  // (kernels/cpu/cpu_blas.h); OPENBLAS_NUM_THREADS does not change that.
  cpu::set_blas_threads(1);
}

std::string CpuBackend::name() const { return "cpu"; }

std::string CpuBackend::threading() const {
  int factor_threads = 1;
  {
    cpu::BlasThreadsScope scope(threads_);
    factor_threads = cpu::blas_threads();
  }
  return fmt::format(
      "{} for gptqd's loops and the tiles of its GEMMs, attention and X^T X ({} core(s) in the "
      "affinity mask); {}: {} per call inside those tiles, {} in the Cholesky and triangular "
      "inverse of order {} and more{}",
      threads_, cpu_cores_available(), cpu::blas_library(), cpu::blas_threads(), factor_threads,
      cpu::kThreadedFactorOrder,
      cpu::blas_is_threaded() ? "" : " (a sequential build: the factorizations run on one core)");
}

std::string CpuBackend::kernel_warning() const {
  return cpu::blas_kernel_warning(cpu::blas_corename(), cpu::cpu_simd(),
                                  std::getenv("OPENBLAS_CORETYPE"), cpu::blas_version());
}

float* CpuBackend::alloc(int64_t count) {
  void* p = aligned_zeroed(count, sizeof(float));
  if (p) device_.add(p, count * static_cast<int64_t>(sizeof(float)));
  return static_cast<float*>(p);
}

void CpuBackend::release(float* p) {
  device_.remove(p);
  std::free(p);
}

uint8_t* CpuBackend::alloc_u8(int64_t count) {
  void* p = aligned_zeroed(count, sizeof(uint8_t));
  if (p) device_.add(p, count);
  return static_cast<uint8_t*>(p);
}

void CpuBackend::release_u8(uint8_t* p) {
  device_.remove(p);
  std::free(p);
}

float* CpuBackend::alloc_host(int64_t count) {
  GPTQD_CHECK(count >= 0, "cpu host alloc of a negative count {}", count);
  if (count == 0) return nullptr;
  const int64_t bytes = count * static_cast<int64_t>(sizeof(float));
  void* p = cpu::alloc_bytes(static_cast<size_t>(bytes));
  host_.add(p, bytes);
  return static_cast<float*>(p);
}

void CpuBackend::release_host(float* p) {
  host_.remove(p);
  std::free(p);
}

MemoryStats CpuBackend::memory_stats() {
  return MemoryStats{device_.in_use(), device_.peak(), host_.in_use(), host_.peak()};
}

void CpuBackend::reset_peak() {
  device_.reset_peak();
  host_.reset_peak();
}

CountedScratch::CountedScratch(CpuBackend& be, int64_t bytes)
    : be_(be), p_(cpu::alloc_bytes(static_cast<size_t>(std::max<int64_t>(bytes, 1)))) {
  be_.device_.add(p_, bytes);
}

CountedScratch::~CountedScratch() {
  be_.device_.remove(p_);
  std::free(p_);
}

void CpuBackend::to_device(float* dst, const float* host, int64_t count) {
  if (count > 0) std::memcpy(dst, host, static_cast<size_t>(count) * sizeof(float));
}

void CpuBackend::to_host(float* host, const float* src, int64_t count) {
  if (count > 0) std::memcpy(host, src, static_cast<size_t>(count) * sizeof(float));
}

void CpuBackend::to_host_u8(uint8_t* host, const uint8_t* src, int64_t count) {
  if (count > 0) std::memcpy(host, src, static_cast<size_t>(count));
}

void CpuBackend::copy(float* dst, const float* src, int64_t count) {
  // memmove: a caller may shift data within one buffer.
  if (count > 0) std::memmove(dst, src, static_cast<size_t>(count) * sizeof(float));
}

void CpuBackend::copy_2d(int64_t rows, int64_t cols, const float* src, int64_t lds, float* dst,
                         int64_t ldd) {
  if (cols <= 0) return;
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(dst + r * ldd, src + r * lds, static_cast<size_t>(cols) * sizeof(float));
}

void CpuBackend::fill(float* dst, float value, int64_t count) {
  if (count > 0) std::fill(dst, dst + count, value);
}

void CpuBackend::synchronize() {}

std::unique_ptr<Backend> make_cpu_backend(int threads) {
  return std::make_unique<CpuBackend>(threads);
}

}  // namespace gptqd
