// bench/cpu_rates: the CPU backend's rates as `gptqd plan --device cpu` takes them (issue 21
// item 4), measured on the shapes of the job to predict. The plan charges the forward GEMMs,
// the Hessian, the GPTQ sweep and the error statistics at one fp32 rate (--tflops) and the
// factorization at another (--factor-tflops); this bench measures both with the plan's own flop
// counts (coordinator/plan_estimate.h): a BLOOM block's four linears per sequence at micro-batch
// 1 plus X^T X of each sequence (2 seq cols^2 per linear input), and the factorization of the
// damped Hessian of the widest input (4/3 n^3). It prints the flags, ready to paste:
//   build/bench/cpu_rates [--hidden H] [--ffn F] [--seq T] [--samples S] [--threads N] [--reps R]
//   --device cpu --tflops 0.0123 --factor-tflops 0.0045
// Defaults: the quick start's shapes (hidden 256, ffn 1024, 128 tokens, 16 sequences), one
// thread, 3 rounds (the fastest kept: other work on a shared machine only slows a round down).
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "base/check.h"
#include "base/timing.h"
#include "bench_random.h"
#include "kernels/backend.h"
#include "kernels/buffer.h"
#include "kernels/cpu/blas_kernel_choice.h"

namespace gptqd {
namespace {

struct Args {
  int64_t hidden = 256, ffn = 1024, seq = 128, samples = 16;
  int threads = 1, reps = 3;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string f = argv[i];
    GPTQD_INPUT_CHECK(i + 1 < argc, "{} needs a value (see the top of bench/cpu_rates.cpp)", f);
    const std::string v = argv[++i];
    if (f == "--hidden")
      a.hidden = std::stoll(v);
    else if (f == "--ffn")
      a.ffn = std::stoll(v);
    else if (f == "--seq")
      a.seq = std::stoll(v);
    else if (f == "--samples")
      a.samples = std::stoll(v);
    else if (f == "--threads")
      a.threads = std::stoi(v);
    else if (f == "--reps")
      a.reps = std::stoi(v);
    else
      throw InputError(fmt::format("unknown argument '{}' (see bench/cpu_rates.cpp)", f));
  }
  GPTQD_INPUT_CHECK(
      a.hidden > 0 && a.ffn > 0 && a.seq > 0 && a.samples > 0 && a.threads > 0 && a.reps > 0,
      "every value must be positive");
  return a;
}

using bench::random_vector;

int run(int argc, char** argv) {
  const Args a = parse(argc, argv);
  auto be = make_cpu_backend(a.threads);
  const int64_t hd = a.hidden, ff = a.ffn, seq = a.seq;
  Buffer xh(*be, random_vector(seq * hd, 1, 1.0f)), xf(*be, random_vector(seq * ff, 2, 0.5f));
  Buffer wqkv(*be, random_vector(3 * hd * hd, 3, 0.05f)), wd(*be, random_vector(hd * hd, 4, 0.05f));
  Buffer wh(*be, random_vector(ff * hd, 5, 0.05f)), w4(*be, random_vector(hd * ff, 6, 0.05f));
  Buffer out(*be, seq * 3 * hd), big(*be, seq * ff), hh(*be, hd * hd), hf(*be, ff * ff);

  // Forward and Hessian of the samples, as the job runs them: one sequence per call.
  const double gemm_flops = 2.0 * seq * (3 * hd * hd + hd * hd + ff * hd + hd * ff);
  const double xtx_flops = 2.0 * seq * (3.0 * hd * hd + ff * ff);  // qkv, dense, h_to_4h; 4h_to_h
  double best_fp32 = 0;
  for (int r = 0; r < a.reps; ++r) {
    be->synchronize();
    const auto t0 = SteadyClock::now();
    for (int64_t s = 0; s < a.samples; ++s) {
      be->forward_gemm(false, true, seq, 3 * hd, hd, 1, xh.data(), hd, wqkv.data(), hd, 0,
                       out.data(), 3 * hd);
      be->forward_gemm(false, true, seq, hd, hd, 1, xh.data(), hd, wd.data(), hd, 0, out.data(),
                       hd);
      be->forward_gemm(false, true, seq, ff, hd, 1, xh.data(), hd, wh.data(), hd, 0, big.data(),
                       ff);
      be->forward_gemm(false, true, seq, hd, ff, 1, xf.data(), ff, w4.data(), ff, 0, out.data(),
                       hd);
      for (int k = 0; k < 3; ++k) be->xtx(seq, hd, xh.data(), 1, 1, hh.data());
      be->xtx(seq, ff, xf.data(), 1, 1, hf.data());
    }
    be->synchronize();
    const double s = seconds_since(t0);
    best_fp32 = std::max(best_fp32, a.samples * (gemm_flops + xtx_flops) / s);
  }

  // The factorization of the widest input's damped Hessian.
  std::vector<float> h = hf.to_host();
  double mean = 0;
  for (int64_t i = 0; i < ff; ++i) mean += h[static_cast<size_t>(i * ff + i)];
  mean /= static_cast<double>(ff);
  for (int64_t i = 0; i < ff; ++i) h[static_cast<size_t>(i * ff + i)] += 0.01f * mean + 1e-3f;
  double best_factor = 0;
  for (int r = 0; r < a.reps; ++r) {
    Buffer u(*be, h);
    be->synchronize();
    const auto t0 = SteadyClock::now();
    GPTQD_CHECK(be->inverse_cholesky_upper(ff, u.data()), "the damped Hessian is not SPD");
    be->synchronize();
    best_factor = std::max(best_factor, 4.0 / 3.0 * ff * ff * ff / seconds_since(t0));
  }
  std::printf(
      "cpu_rates: hidden %lld, ffn %lld, %lld tokens x %lld sequences, %d thread(s): "
      "forward and Hessian %.2f GFLOP/s, factorization (order %lld) %.2f GFLOP/s\n",
      static_cast<long long>(hd), static_cast<long long>(ff), static_cast<long long>(seq),
      static_cast<long long>(a.samples), a.threads, best_fp32 / 1e9, static_cast<long long>(ff),
      best_factor / 1e9);
  std::printf("--device cpu --tflops %.6g --factor-tflops %.6g\n", best_fp32 / 1e12,
              best_factor / 1e12);
  return 0;
}

}  // namespace
}  // namespace gptqd

int main(int argc, char** argv) {
  gptqd::cpu::choose_blas_kernels(argv);  // the kernels gptqd itself runs
  try {
    return gptqd::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cpu_rates: %s\n", e.what());
    return 1;
  }
}
