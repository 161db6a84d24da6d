// bench/cpu_threads: does `--threads N` keep N cores busy? Each CPU phase of a quantize job
// runs through the CPU backend at 1 thread (the reference, in the same run) and at 2 and N
// threads, with the shapes of the quick start's job (configs/tiny-bloom.yaml: hidden 256,
// 8 heads, ffn 1024, 128-token sequences, one sequence per call as `gptqd quantize` runs
// them). Per phase and thread count it prints the wall seconds, the CPU seconds of the
// process (CLOCK_PROCESS_CPUTIME_ID: every thread, joined ones included), the utilisation
// (CPU s / wall s: 2.0 is two cores busy), the speed-up over 1 thread, and whether the
// result is bit-identical to the 1-thread run, and CPU/main (see Measure). Phases:
//   gemm       forward_gemm of the block's four linears, per sequence
//   attention  alibi_attention, per sequence
//   pointwise  layer_norm, add_bias, gelu and add, per sequence
//   hessian    xtx of each sequence's inputs into H [hidden] and H [ffn]
//   factor     inverse_cholesky_upper of the damped H [ffn] (OpenBLAS's LAPACK)
//   gptq       gptq_quantize of the hidden x ffn layer (4-bit, group 128): factor + sweep
// The thread counts are interleaved and each phase keeps its fastest of --reps rounds, so
// that other work on the machine moves the figures as little as it can.
//
//   build/bench/cpu_threads [--samples S] [--hidden H] [--heads A] [--ffn F] [--seq T]
//                           [--threads 1,2,N] [--reps R]
// Defaults: 128 samples (the job's nsamples in the issue), the tiny-bloom shapes, threads
// 1, 2 and std::thread::hardware_concurrency(), 3 rounds. SmolLM2-135M's shapes:
//   --hidden 576 --heads 9 --ffn 1536 --seq 512 --samples 16
#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "base/check.h"
#include "base/timing.h"
#include "bench_load.h"
#include "bench_random.h"
#include "kernels/backend.h"
#include "kernels/buffer.h"
#include "kernels/cpu/blas_kernel_choice.h"
#include "worker/gptq.h"

namespace gptqd {
namespace {

double cpu_seconds(clockid_t clock) {
  timespec t{};
  clock_gettime(clock, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

struct Args {
  int64_t samples = 128, hidden = 256, heads = 8, ffn = 1024, seq = 128;
  std::vector<int> threads;
  int reps = 3;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string f = argv[i];
    auto value = [&]() -> std::string {
      GPTQD_INPUT_CHECK(i + 1 < argc, "{} needs a value", f);
      return argv[++i];
    };
    if (f == "--samples") {
      a.samples = std::stoll(value());
    } else if (f == "--hidden") {
      a.hidden = std::stoll(value());
    } else if (f == "--heads") {
      a.heads = std::stoll(value());
    } else if (f == "--ffn") {
      a.ffn = std::stoll(value());
    } else if (f == "--seq") {
      a.seq = std::stoll(value());
    } else if (f == "--reps") {
      a.reps = std::stoi(value());
    } else if (f == "--threads") {
      const std::string list = value();
      for (size_t at = 0; at < list.size();) {
        const size_t comma = std::min(list.find(',', at), list.size());
        a.threads.push_back(std::stoi(list.substr(at, comma - at)));
        at = comma + 1;
      }
    } else {
      throw InputError(
          fmt::format("unknown argument '{}' (see the top of bench/cpu_threads.cpp)", f));
    }
  }
  GPTQD_INPUT_CHECK(a.samples >= 1 && a.seq >= 1 && a.heads >= 1 && a.hidden % a.heads == 0 &&
                        a.ffn >= 1 && a.reps >= 1,
                    "bad shape or count");
  if (a.threads.empty()) {
    const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    a.threads = {1, 2};
    if (hw > 2) a.threads.push_back(hw);
  }
  if (a.threads.front() != 1) a.threads.insert(a.threads.begin(), 1);  // the reference
  return a;
}

using bench::random_vector;

// One phase's measurement: fastest round, and the bits of its result. cpu: the process's CPU
// seconds; main: the calling thread's. On a busy machine wall time measures the other work as
// much as ours, but cpu / main does not: it is the speed-up the phase's split of the work
// allows where each thread has a core of its own (the calling thread takes its share of every
// split; the split is even when it is cpu / main = the thread count).
struct Measure {
  double wall = 0, cpu = 0, main = 0;
  std::vector<float> result;
};

// The inputs every thread count shares.
struct Inputs {
  std::vector<float> x_hidden, x_ffn;  // [samples * seq, hidden | ffn]
  std::vector<float> w_qkv, w_dense, w_h4h, w_4hh, bias, gamma, beta;
  std::vector<float> h_ffn;  // the damped Hessian of x_ffn
};

Inputs make_inputs(const Args& a) {
  const int64_t tokens = a.samples * a.seq, hd = a.hidden, ff = a.ffn;
  Inputs in;
  in.x_hidden = random_vector(tokens * hd, 1, 1.0f);
  in.x_ffn = random_vector(tokens * ff, 2, 0.5f);
  in.w_qkv = random_vector(3 * hd * hd, 3, 0.05f);
  in.w_dense = random_vector(hd * hd, 4, 0.05f);
  in.w_h4h = random_vector(ff * hd, 5, 0.05f);
  in.w_4hh = random_vector(hd * ff, 6, 0.05f);
  in.bias = random_vector(std::max(3 * hd, ff), 7, 0.1f);
  in.gamma = random_vector(hd, 8, 0.2f);
  for (auto& g : in.gamma) g += 1.0f;
  in.beta = random_vector(hd, 9, 0.1f);
  return in;
}

// Runs every phase once at `threads`, returning each phase's time and result.
std::map<std::string, Measure> run_phases(const Args& a, const Inputs& in, int threads) {
  auto be = make_cpu_backend(threads);
  const int64_t seq = a.seq, hd = a.hidden, ff = a.ffn, tokens = a.samples * seq;
  std::map<std::string, Measure> out;
  auto timed = [&](const std::string& name, const std::function<std::vector<float>()>& fn) {
    be->synchronize();
    const double c0 = cpu_seconds(CLOCK_PROCESS_CPUTIME_ID);
    const double m0 = cpu_seconds(CLOCK_THREAD_CPUTIME_ID);
    const auto t0 = SteadyClock::now();
    std::vector<float> r = fn();
    be->synchronize();
    Measure m;
    m.wall = seconds_since(t0);
    m.cpu = cpu_seconds(CLOCK_PROCESS_CPUTIME_ID) - c0;
    m.main = cpu_seconds(CLOCK_THREAD_CPUTIME_ID) - m0;
    m.result = std::move(r);
    out[name] = std::move(m);
  };

  Buffer xh(*be, in.x_hidden), xf(*be, in.x_ffn);
  Buffer wqkv(*be, in.w_qkv), wd(*be, in.w_dense), wh(*be, in.w_h4h), w4(*be, in.w_4hh);
  Buffer bias(*be, in.bias), gamma(*be, in.gamma), beta(*be, in.beta);
  Buffer qkv(*be, seq * 3 * hd), big(*be, seq * ff), small(*be, seq * hd);

  timed("gemm", [&] {
    std::vector<float> last;
    for (int64_t s = 0; s < a.samples; ++s) {
      const float* x = xh.data() + s * seq * hd;
      be->forward_gemm(false, true, seq, 3 * hd, hd, 1.0f, x, hd, wqkv.data(), hd, 0.0f, qkv.data(),
                       3 * hd);
      be->forward_gemm(false, true, seq, hd, hd, 1.0f, x, hd, wd.data(), hd, 0.0f, small.data(),
                       hd);
      be->forward_gemm(false, true, seq, ff, hd, 1.0f, x, hd, wh.data(), hd, 0.0f, big.data(), ff);
      be->forward_gemm(false, true, seq, hd, ff, 1.0f, xf.data() + s * seq * ff, ff, w4.data(), ff,
                       1.0f, small.data(), hd);
    }
    std::vector<float> r = qkv.to_host(), b = big.to_host(), c = small.to_host();
    r.insert(r.end(), b.begin(), b.end());
    r.insert(r.end(), c.begin(), c.end());
    return r;
  });
  timed("attention", [&] {
    Buffer ctx(*be, seq * hd);
    std::vector<float> sum(static_cast<size_t>(seq * hd), 0.0f);
    for (int64_t s = 0; s < a.samples; ++s) {
      // The sample's own qkv: three hidden-wide slices of x_ffn's row when it is wide
      // enough, else x_hidden tiled (the values only need to differ between samples).
      be->copy_2d(seq, std::min<int64_t>(3 * hd, ff), xf.data() + s * seq * ff, ff, qkv.data(),
                  3 * hd);
      be->alibi_attention(1, seq, a.heads, hd / a.heads, qkv.data(), ctx.data());
    }
    return ctx.to_host();
  });
  timed("pointwise", [&] {
    for (int64_t s = 0; s < a.samples; ++s) {
      be->layer_norm(seq, hd, xh.data() + s * seq * hd, gamma.data(), beta.data(), 1e-5f,
                     small.data());
      be->copy(big.data(), xf.data() + s * seq * ff, seq * ff);
      be->add_bias(seq, ff, bias.data(), big.data());
      be->gelu(seq * ff, big.data());
      be->add(seq * hd, xh.data() + s * seq * hd, small.data());
    }
    std::vector<float> r = small.to_host(), b = big.to_host();
    r.insert(r.end(), b.begin(), b.end());
    return r;
  });
  Buffer hh(*be, hd * hd), hf(*be, ff * ff);
  timed("hessian", [&] {
    for (int64_t s = 0; s < a.samples; ++s) {
      const float keep = static_cast<float>(s) / static_cast<float>(s + 1);
      const float scale = 2.0f / static_cast<float>(s + 1);
      be->xtx(seq, hd, xh.data() + s * seq * hd, keep, scale, hh.data());
      be->xtx(seq, ff, xf.data() + s * seq * ff, keep, scale, hf.data());
    }
    std::vector<float> r = hh.to_host(), f = hf.to_host();
    r.insert(r.end(), f.begin(), f.end());
    return r;
  });
  std::vector<float> h_ffn = hf.to_host();
  double mean_diag = 0;
  for (int64_t i = 0; i < ff; ++i) mean_diag += h_ffn[static_cast<size_t>(i * ff + i)];
  mean_diag /= static_cast<double>(ff);
  std::vector<float> damped = h_ffn;
  for (int64_t i = 0; i < ff; ++i)
    damped[static_cast<size_t>(i * ff + i)] += static_cast<float>(0.01 * mean_diag);
  timed("factor", [&] {
    Buffer u(*be, damped);
    GPTQD_CHECK(be->inverse_cholesky_upper(ff, u.data()), "the damped H is not SPD");
    return u.to_host();
  });
  timed("gptq", [&] {
    GptqOptions opt;
    opt.bits = 4;
    opt.group_size = 128;
    opt.label = "bench";
    const QuantizedLayer q = gptq_quantize(*be, in.w_4hh.data(), hd, ff, h_ffn.data(), opt);
    std::vector<float> r(q.codes.begin(), q.codes.end());
    r.push_back(static_cast<float>(q.loss));
    return r;
  });
  (void)tokens;
  return out;
}

}  // namespace
}  // namespace gptqd

int main(int argc, char** argv) {
  gptqd::cpu::choose_blas_kernels(argv);  // the kernels gptqd itself runs
  using namespace gptqd;
  try {
    const Args a = parse(argc, argv);
    const Inputs in = make_inputs(a);
    std::printf(
        "cpu_threads: %lld samples x %lld tokens, hidden %lld, %lld heads, ffn %lld; hardware "
        "threads %u; load average before %s\n",
        static_cast<long long>(a.samples), static_cast<long long>(a.seq),
        static_cast<long long>(a.hidden), static_cast<long long>(a.heads),
        static_cast<long long>(a.ffn), std::thread::hardware_concurrency(),
        bench::load_average().c_str());
    std::map<int, std::map<std::string, Measure>> best;
    for (int rep = 0; rep < a.reps; ++rep) {
      for (int t : a.threads) {
        auto m = run_phases(a, in, t);
        for (auto& [name, x] : m) {
          auto& b = best[t];
          if (!b.count(name) || x.wall < b[name].wall) b[name] = std::move(x);
        }
      }
    }
    const std::vector<std::string> order = {"gemm",    "attention", "pointwise",
                                            "hessian", "factor",    "gptq"};
    std::printf("%-10s %7s | %8s %8s %6s | %8s | %8s | %s\n", "phase", "threads", "wall s", "CPU s",
                "util", "speed-up", "CPU/main", "bits vs 1 thread");
    std::map<int, Measure> total;
    for (const auto& name : order) {
      const Measure& ref = best[1][name];
      for (int t : a.threads) {
        const Measure& m = best[t][name];
        const bool same =
            m.result.size() == ref.result.size() &&
            std::memcmp(m.result.data(), ref.result.data(), m.result.size() * sizeof(float)) == 0;
        std::printf("%-10s %7d | %8.3f %8.3f %6.2f | %7.2fx | %8.2f | %s\n", name.c_str(), t,
                    m.wall, m.cpu, m.cpu / std::max(m.wall, 1e-9),
                    ref.wall / std::max(m.wall, 1e-9), m.cpu / std::max(m.main, 1e-9),
                    t == 1 ? "(reference)"
                    : same ? "identical"
                           : "DIFFER");
        total[t].wall += m.wall;
        total[t].cpu += m.cpu;
        total[t].main += m.main;
      }
    }
    for (int t : a.threads) {
      const Measure& m = total[t];
      std::printf("%-10s %7d | %8.3f %8.3f %6.2f | %7.2fx | %8.2f |\n", "all", t, m.wall, m.cpu,
                  m.cpu / std::max(m.wall, 1e-9), total[1].wall / std::max(m.wall, 1e-9),
                  m.cpu / std::max(m.main, 1e-9));
    }
    std::printf("load average after %s\n", bench::load_average().c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cpu_threads: %s\n", e.what());
    return 1;
  }
}
