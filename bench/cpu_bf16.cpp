// bench/cpu_bf16: what `parallel.precision: fast` costs or saves on the CPU (issue 23 item 5).
// The CPU backend's fast products round their operands to bf16 and sum in fp32 (the tensor
// cores' numerics) through the same fp32 BLAS calls as exact: the emulation. A native bf16
// GEMM (OpenBLAS's cblas_sbgemm, AVX512-BF16 kernels) could only be faster where the CPU
// multiplies bf16 pairs faster than fp32 ones, so the bench measures, in one run:
//   peak    one thread's multiply-adds per second with 512-bit fp32 FMAs (vfmadd231ps) and with
//           512-bit bf16 dot products (vdpbf16ps, two bf16 products per fp32 lane), the
//           instruction streams alone (12 independent accumulators, no memory): the ceiling of
//           any GEMM of each kind on this core;
//   exact   forward_gemm in kExact (fp32 sgemm, the backend's tiles) and xtx: the reference;
//   fast    forward_gemm_bf16_b in kFast with the weight resident in bf16, as the worker runs a
//           linear layer under fast (worker/families/family_forward.cpp), and xtx in kFast;
//   native  cblas_sbgemm where the loaded BLAS exports it (looked up at run time: Debian's
//           OpenBLAS 0.3.21 declares it in cblas.h but is built without it), on the activations
//           rounded by to_bf16 in the timed region and the bf16 weight, one call on the BLAS's
//           own threads. Any cblas_sbgemm in the process counts: another library's bf16 GEMM
//           can be put in with LD_PRELOAD of a library defining it.
// Shapes: SmolLM2-135M's linears at --tokens (512: one sequence per call, as quantize runs
// them) -- q/o 576 -> 576, k/v 576 -> 192, gate/up 576 -> 1536, down 1536 -> 576 -- and its
// Hessians (d 576, 1536), then a larger linear (2048 tokens, 4096 -> 4096) and Hessian (d 4096).
// Rounds interleave thread counts, shapes and variants (the variants' order turning each round);
// each keeps its fastest of --reps (other work on a shared machine only slows a round down).
// The load average is printed before and after.
//   build/bench/cpu_bf16 [--tokens T] [--threads 1,2] [--reps R]     (defaults: 512, 1,2, 6)
#include <dlfcn.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include "base/check.h"
#include "base/timing.h"
#include "bench_load.h"
#include "bench_random.h"
#include "kernels/backend.h"
#include "kernels/buffer.h"
#include "kernels/cpu/blas_kernel_choice.h"
#include "kernels/cpu/cpu_blas.h"

namespace gptqd {
namespace {

// ---- peak: the instruction streams alone -------------------------------------------------
#if defined(__x86_64__) && defined(__GNUC__)
// kChains independent accumulators: more than latency x throughput of either instruction, so
// the loop runs at the instruction's issue rate (8, 12 and 16 give the same rates here). Each
// starts at its own value, so the compiler cannot merge identical chains into one (it does:
// the rate measured is then the latency's), and the empty asm makes x opaque each iteration,
// so it cannot fold the loop either.
constexpr int kChains = 12;
constexpr long kPeakIters = 10'000'000;

// The sum of every lane (stored and added here: GCC 12's _mm512_reduce_add_ps draws a
// -Wuninitialized from its own header).
__attribute__((target("avx512f"))) float lanes_sum(const __m512* acc) {
  alignas(64) float lanes[16];
  float sum = 0;
  for (int c = 0; c < kChains; ++c) {
    _mm512_store_ps(lanes, acc[c]);
    for (float v : lanes) sum += v;
  }
  return sum;
}

__attribute__((target("avx512f"))) float fma_stream(long iters) {
  __m512 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(static_cast<float>(c));
  __m512 x = _mm512_set1_ps(1.0f), y = _mm512_set1_ps(1e-8f);
  for (long i = 0; i < iters; ++i) {
    for (auto& a : acc) a = _mm512_fmadd_ps(x, y, a);
    __asm__ volatile("" : "+v"(x));
  }
  return lanes_sum(acc);
}

__attribute__((target("avx512f,avx512bf16"))) float bf16_dot_stream(long iters) {
  __m512 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(static_cast<float>(c));
  __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80);  // 1.0
  __m512bh y = (__m512bh)_mm512_set1_epi16(0x3200);  // 2^-27
  for (long i = 0; i < iters; ++i) {
    for (auto& a : acc) a = _mm512_dpbf16_ps(a, x, y);
    __asm__ volatile("" : "+v"(x));
  }
  return lanes_sum(acc);
}

// Multiply-adds per second of `stream` (`per_instr` per instruction), the fastest of reps.
template <typename F>
double peak_rate(F stream, int per_instr, int reps) {
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = SteadyClock::now();
    volatile float sink = stream(kPeakIters);
    (void)sink;
    best = std::max(best, double(kPeakIters) * kChains * per_instr / seconds_since(t0));
  }
  return best;
}

void print_peak(int reps) {
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx512f")) {
    std::printf("peak: no AVX-512 on this CPU, not measured\n");
    return;
  }
  double fp32 = 0, bf16 = 0;
  const bool has_bf16 = __builtin_cpu_supports("avx512bf16");
  for (int r = 0; r < reps; ++r) {  // interleaved
    fp32 = std::max(fp32, peak_rate(fma_stream, 16, 1));
    if (has_bf16) bf16 = std::max(bf16, peak_rate(bf16_dot_stream, 32, 1));
  }
  if (!has_bf16) {
    std::printf("peak, 1 thread: fp32 FMA %.1f GMAC/s; no AVX512-BF16 on this CPU\n", fp32 / 1e9);
    return;
  }
  std::printf(
      "peak, 1 thread: fp32 FMA (vfmadd231ps zmm) %.1f GMAC/s, bf16 dot (vdpbf16ps zmm) %.1f "
      "GMAC/s: bf16/fp32 %.2fx\n",
      fp32 / 1e9, bf16 / 1e9, bf16 / fp32);
}
#else
void print_peak(int) { std::printf("peak: x86-64 only, not measured\n"); }
#endif

// ---- the products ------------------------------------------------------------------------
// cblas_sbgemm as OpenBLAS declares it (blasint = int in Debian's LP64 build; CBLAS enums).
using Sbgemm = void (*)(int order, int trans_a, int trans_b, int m, int n, int k, float alpha,
                        const uint16_t* a, int lda, const uint16_t* b, int ldb, float beta,
                        float* c, int ldc);
constexpr int kCblasRowMajor = 101, kCblasNoTrans = 111, kCblasTrans = 112;

Sbgemm find_sbgemm() { return reinterpret_cast<Sbgemm>(dlsym(RTLD_DEFAULT, "cblas_sbgemm")); }

struct Shape {
  std::string name;
  bool hessian;     // xtx(n = m, d = k) instead of a linear
  int64_t m, n, k;  // linear: y [m, n] = x [m, k] W^T, W [n, k]
};

struct Args {
  int64_t tokens = 512;
  std::vector<int> threads{1, 2};
  int reps = 6;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string f = argv[i];
    GPTQD_INPUT_CHECK(i + 1 < argc, "{} needs a value (see the top of bench/cpu_bf16.cpp)", f);
    const std::string v = argv[++i];
    if (f == "--tokens") {
      a.tokens = std::stoll(v);
    } else if (f == "--reps") {
      a.reps = std::stoi(v);
    } else if (f == "--threads") {
      a.threads.clear();
      for (size_t p = 0; p < v.size();) {
        const size_t q = std::min(v.find(',', p), v.size());
        a.threads.push_back(std::stoi(v.substr(p, q - p)));
        p = q + 1;
      }
    } else {
      throw InputError(fmt::format("unknown argument '{}' (see bench/cpu_bf16.cpp)", f));
    }
  }
  GPTQD_INPUT_CHECK(a.tokens > 0 && a.reps > 0 && !a.threads.empty(), "values must be positive");
  for (int t : a.threads) GPTQD_INPUT_CHECK(t > 0, "--threads: positive counts");
  return a;
}

using bench::random_vector;

int run(int argc, char** argv) {
  const Args a = parse(argc, argv);
  const int64_t t = a.tokens;
  const std::vector<Shape> shapes = {
      {"q,o      576->576", false, t, 576, 576},      {"k,v      576->192", false, t, 192, 576},
      {"gate,up 576->1536", false, t, 1536, 576},     {"down    1536->576", false, t, 576, 1536},
      {"H (X^T X)  d 576", true, t, 576, 576},        {"H (X^T X) d 1536", true, t, 1536, 1536},
      {"larger 4096->4096", false, 2048, 4096, 4096}, {"H (X^T X) d 4096", true, 2048, 4096, 4096},
  };
  const Sbgemm sbgemm = find_sbgemm();
  std::printf("cpu_bf16: %s; load average %s at the start\n", cpu::blas_library().c_str(),
              bench::load_average().c_str());
  print_peak(10);
  if (sbgemm == nullptr)
    std::printf("native: not measured, the loaded BLAS exports no cblas_sbgemm (%s)\n",
                cpu::blas_version().c_str());

  // One backend per thread count; operands per shape, on each backend.
  std::vector<std::unique_ptr<Backend>> bes;
  for (int th : a.threads) bes.push_back(make_cpu_backend(th));
  enum Variant { kExactV, kFastV, kNativeV, kVariants };
  // best[thread index][shape][variant] seconds
  std::vector<std::vector<std::array<double, kVariants>>> best(
      a.threads.size(), std::vector<std::array<double, kVariants>>(shapes.size()));
  for (auto& per_thread : best)
    for (auto& v : per_thread) v.fill(1e30);
  std::vector<double> native_diff(shapes.size(), 0.0);

  // The operands of every shape on every backend, made before the first round.
  struct Case {
    Buffer x, w, y, y_native;
    Bf16Buffer w16, x16;
  };
  std::vector<std::vector<Case>> cases(a.threads.size());
  for (size_t ti = 0; ti < a.threads.size(); ++ti) {
    Backend& be = *bes[ti];
    for (size_t si = 0; si < shapes.size(); ++si) {
      const Shape& s = shapes[si];
      const int64_t m = s.m, n = s.n, k = s.k;
      Case c{Buffer(be, random_vector(m * k, 1 + si, 1.0f)),
             Buffer(be, random_vector(s.hessian ? 1 : n * k, 100 + si, 0.05f)),
             Buffer(be, s.hessian ? k * k : m * n),
             Buffer(be, s.hessian || sbgemm == nullptr ? 1 : m * n),
             Bf16Buffer(be, s.hessian ? 1 : n * k),
             Bf16Buffer(be, s.hessian ? 1 : m * k)};
      if (!s.hessian) be.to_bf16(n * k, c.w.data(), c.w16.data());
      cases[ti].push_back(std::move(c));
    }
  }

  for (int r = 0; r < a.reps; ++r) {
    for (size_t ti = 0; ti < a.threads.size(); ++ti) {
      Backend& be = *bes[ti];
      for (size_t si = 0; si < shapes.size(); ++si) {
        const Shape& s = shapes[si];
        const int64_t m = s.m, n = s.n, k = s.k;
        Case& c = cases[ti][si];
        // The first variant of a round finds the caches holding the previous shape's operands:
        // the order turns each round, so each variant leads as often as the others.
        for (int i = 0; i < kVariants; ++i) {
          const int v = (i + r) % kVariants;
          if (v == kNativeV && (s.hessian || sbgemm == nullptr)) continue;
          be.set_precision(v == kFastV ? Precision::kFast : Precision::kExact);
          be.synchronize();
          const auto t0 = SteadyClock::now();
          if (s.hessian) {
            be.xtx(m, k, c.x.data(), 0.0f, 1.0f, c.y.data());
          } else if (v == kExactV) {
            be.forward_gemm(false, true, m, n, k, 1.0f, c.x.data(), k, c.w.data(), k, 0.0f,
                            c.y.data(), n);
          } else if (v == kFastV) {
            be.forward_gemm_bf16_b(false, true, m, n, k, 1.0f, c.x.data(), k, c.w16.data(), k, 0.0f,
                                   c.y.data(), n);
          } else {
            be.to_bf16(m * k, c.x.data(), c.x16.data());
            cpu::BlasThreadsScope blas(a.threads[ti]);
            sbgemm(kCblasRowMajor, kCblasNoTrans, kCblasTrans, static_cast<int>(m),
                   static_cast<int>(n), static_cast<int>(k), 1.0f, c.x16.data(),
                   static_cast<int>(k), c.w16.data(), static_cast<int>(k), 0.0f, c.y_native.data(),
                   static_cast<int>(n));
          }
          be.synchronize();
          best[ti][si][v] = std::min(best[ti][si][v], seconds_since(t0));
        }
        be.set_precision(Precision::kExact);
      }
    }
  }

  // Native against the emulation: they differ only by the order of the fp32 sums.
  if (sbgemm != nullptr) {
    for (size_t si = 0; si < shapes.size(); ++si) {
      const Shape& s = shapes[si];
      if (s.hessian) continue;
      Case& c = cases[0][si];
      Backend& be = *bes[0];
      be.set_precision(Precision::kFast);
      be.forward_gemm_bf16_b(false, true, s.m, s.n, s.k, 1.0f, c.x.data(), s.k, c.w16.data(), s.k,
                             0.0f, c.y.data(), s.n);
      be.set_precision(Precision::kExact);
      const std::vector<float> e = c.y.to_host(), nat = c.y_native.to_host();
      double d = 0, mx = 0;
      for (size_t i = 0; i < e.size(); ++i) {
        d = std::max(d, double(std::fabs(e[i] - nat[i])));
        mx = std::max(mx, double(std::fabs(e[i])));
      }
      native_diff[si] = d / std::max(mx, 1e-30);
    }
  }

  for (size_t ti = 0; ti < a.threads.size(); ++ti) {
    std::printf("\n%d thread(s): seconds per product, fastest of %d; ratio = exact s / variant s\n",
                a.threads[ti], a.reps);
    std::printf("  %-19s %14s %10s %8s %10s %8s\n", "product (tokens)", "exact (GF/s)", "fast",
                "ratio", "native", "ratio");
    for (size_t si = 0; si < shapes.size(); ++si) {
      const Shape& s = shapes[si];
      const auto& b = best[ti][si];
      const double flops =
          s.hessian ? double(s.m) * s.k * (s.k + 1) : 2.0 * double(s.m) * s.n * s.k;
      std::string native = "n/a", native_ratio = "";
      if (b[kNativeV] < 1e29) {
        native = fmt::format("{:.5f}", b[kNativeV]);
        native_ratio = fmt::format("{:.2f}x", b[kExactV] / b[kNativeV]);
      }
      std::printf("  %-17s %5lld %8.5f (%4.0f) %10.5f %7.2fx %10s %8s\n", s.name.c_str(),
                  static_cast<long long>(s.m), b[kExactV], flops / b[kExactV] / 1e9, b[kFastV],
                  b[kExactV] / b[kFastV], native.c_str(), native_ratio.c_str());
    }
  }
  if (sbgemm != nullptr) {
    std::printf("\nnative vs emulation, max |diff| / max |result|:");
    for (size_t si = 0; si < shapes.size(); ++si)
      if (!shapes[si].hessian) std::printf(" %.1e", native_diff[si]);
    std::printf("\n");
  }
  std::printf("load average %s at the end\n", bench::load_average().c_str());
  return 0;
}

}  // namespace
}  // namespace gptqd

int main(int argc, char** argv) {
  gptqd::cpu::choose_blas_kernels(argv);  // the kernels gptqd itself runs
  try {
    return gptqd::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cpu_bf16: %s\n", e.what());
    return 1;
  }
}
