// GPU benchmark of one BLOOM block at full size (BLOOM-176B: hidden 14336,
// 112 heads), phase by phase, on the CUDA backend with the worker's own code
// paths: the block forward (and the partial forwards that true_sequential
// runs), the Hessian accumulation, the fp64 factorization, and the
// quantization of each linear (gptq_quantize + rtn_quantize + the two
// output_error products, what worker/block_quantizer.cpp does per linear).
// The forward and the Hessian run twice: exact (fp32) and fast (bf16 operands,
// fp32 accumulation: parallel.precision). For each phase: time, achieved
// TFLOP/s, the fraction of the device's peak (fp32 CUDA cores for the GEMM
// phases, fp64 tensor cores for the factorization) and the rate `gptqd plan`
// assumes for it (coordinator/plan_rates.h); then the projected time of BLOOM-176B (70 blocks) at
// the paper's calibration size (128 x 2048 tokens) from these measurements.
//
// Usage: gpu_gptq [--hidden 14336] [--heads 112] [--seq 2048] [--nsamples 128]
//                 [--micro 1] [--blocks 70] [--replicas 8]
// Full size needs ~45 GB of GPU memory and ~50 GB of host memory (the
// 57344^2 Hessian of mlp.dense_4h_to_h, with the driver's host copies); use a
// smaller --hidden on smaller machines. Without a GPU it says so and exits 0.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "coordinator/plan_rates.h"
#include "io/model/model_spec.h"
#include "kernels/backend.h"
#include "kernels/buffer.h"
#include "base/check.h"
#include "kernels/cuda/cuda_info.h"
#include "worker/block_forward.h"
#include "worker/gptq.h"
#include "worker/hessian.h"
#include "worker/model_weights.h"

namespace gptqd {
namespace {

using Clock = std::chrono::steady_clock;

struct Args {
  int64_t hidden = 14336, heads = 112, seq = 2048, nsamples = 128, micro = 1, blocks = 70;
  int64_t replicas = 8;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    int64_t* dst = flag == "--hidden"     ? &a.hidden
                   : flag == "--heads"    ? &a.heads
                   : flag == "--seq"      ? &a.seq
                   : flag == "--nsamples" ? &a.nsamples
                   : flag == "--micro"    ? &a.micro
                   : flag == "--blocks"   ? &a.blocks
                   : flag == "--replicas" ? &a.replicas
                                          : nullptr;
    GPTQD_INPUT_CHECK(dst != nullptr && i + 1 < argc, "unknown flag or missing value: {}", flag);
    *dst = std::atoll(argv[++i]);
    GPTQD_INPUT_CHECK(*dst > 0, "{} must be positive", flag);
  }
  GPTQD_INPUT_CHECK(a.hidden % a.heads == 0, "--hidden {} is not a multiple of --heads {}",
                    a.hidden, a.heads);
  GPTQD_INPUT_CHECK(a.nsamples % a.micro == 0, "--nsamples must be a multiple of --micro");
  return a;
}

// Best of `reps` timed runs after one warm-up, each ended by synchronize().
template <typename F>
double seconds(Backend& be, int reps, F&& fn) {
  fn();
  be.synchronize();
  double best = std::numeric_limits<double>::infinity();
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    fn();
    be.synchronize();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}

// n values ~ N(0, sd) without 10^10 host RNG calls: one random megabyte tiled
// over the buffer with device copies (timings do not depend on the values).
void random_fill(Backend& be, float* dst, int64_t n, float sd, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.0f, sd);
  std::vector<float> chunk(static_cast<size_t>(std::min<int64_t>(n, 1 << 18)));
  for (auto& v : chunk) v = normal(gen);
  const int64_t c = static_cast<int64_t>(chunk.size());
  be.to_device(dst, chunk.data(), c);
  for (int64_t off = c; off < n; off += c) be.copy(dst + off, dst, std::min(c, n - off));
}

std::vector<float> random_host(int64_t n, float sd, uint64_t seed) {
  std::vector<float> v(static_cast<size_t>(n));
  uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
  for (auto& x : v) {  // xorshift64*: uniform in [-sd*sqrt(3), sd*sqrt(3)), variance sd^2
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    const double u = static_cast<double>((s * 0x2545f4914f6cdd1dull) >> 11) * 0x1.0p-53;
    x = static_cast<float>((2 * u - 1) * 1.7320508 * sd);
  }
  return v;
}

// Each line: the measured rate, its fraction of the device's peak, and the rate `gptqd plan`
// assumes for the phase (coordinator/plan_rates.h, named), so a GPU run calibrates the plan.
struct Report {
  double peak32 = 0, peak64 = 0;
  void line(const std::string& phase, const std::string& shape, double sec, double flops,
            double peak, double assumed, const char* assumed_name) const {
    const double tflops = flops / sec * 1e-12;
    const std::string of_peak = peak > 0 ? fmt::format("{:.1f}%", 100 * tflops / peak) : "n/a";
    const std::string plan =
        assumed > 0 ? fmt::format("{:g} ({})", assumed, assumed_name) : std::string("-");
    std::printf("%-34s %-26s %10.4f %9.2f %8s  %s\n", phase.c_str(), shape.c_str(), sec, tflops,
                of_peak.c_str(), plan.c_str());
  }
};

using plan_rates::kBf16Tflops;
using plan_rates::kFactorTflops;
using plan_rates::kFp32Tflops;

// The four linears of a BLOOM block (io/model/families/bloom.cpp), in true-sequential order.
constexpr int kNumLinears = 4;
constexpr int kFourHh = 3;

// A BLOOM block of random weights shaped by d (unit layer-norm weights, zero biases); the
// linears' weights in bf16 under precision fast (worker/model_weights.h).
BlockWeights random_block(Backend& be, const ModelSpec& d) {
  BlockWeights w;
  for (const TensorSpec& t : d.block_norms) w.norms.emplace_back(be, t.numel());
  be.fill(w.norms[0].data(), 1.0f, d.hidden);  // input_layernorm.weight
  be.fill(w.norms[2].data(), 1.0f, d.hidden);  // post_attention_layernorm.weight
  w.linears.resize(d.linears.size());
  for (size_t i = 0; i < d.linears.size(); ++i) {
    LinearWeights& l = w.linears[i];
    l.out = d.linears[i].out;
    l.in = d.linears[i].in;
    l.w = Buffer(be, l.out * l.in);
    l.b = Buffer(be, l.out);
    random_fill(be, l.w.data(), l.out * l.in, 0.02f, 10 + static_cast<int>(i));
    if (be.precision() == Precision::kFast) {  // resident in bf16, as the job keeps them
      l.w16 = Bf16Buffer(be, l.out * l.in);
      be.to_bf16(l.out * l.in, l.w.data(), l.w16.data());
      l.w = Buffer();
    }
  }
  return w;
}

int run(const Args& a) {
  if (cuda_device_count() == 0) {
    std::printf("gpu_gptq: no CUDA device; nothing to measure\n");
    return 0;
  }
  const CudaDeviceInfo dev = cuda_device_info(0);
  auto be_ptr = make_cuda_backend(0);
  Backend& be = *be_ptr;
  Report rep{dev.peak_fp32_tflops, dev.peak_fp64_tflops};
  std::printf(
      "device: %s (sm_%d%d, %d SMs, %.2f GHz, %.1f GiB); peaks: fp32 %.1f TFLOP/s, fp64 "
      "tensor %.1f TFLOP/s\n",
      dev.name.c_str(), dev.cc_major, dev.cc_minor, dev.sm_count, dev.clock_ghz, dev.memory_gib,
      dev.peak_fp32_tflops, dev.peak_fp64_tflops);

  ModelConfig cfg;  // a BLOOM block of the asked size
  cfg.n_layer = a.blocks;
  cfg.hidden = a.hidden;
  cfg.n_head = a.heads;
  cfg.head_dim = a.hidden / a.heads;
  cfg.ffn = 4 * a.hidden;
  cfg.vocab = 1;
  const ModelSpec d = ModelSpec::of(cfg);
  const int64_t h = d.hidden, tokens = a.micro * a.seq;
  const int64_t micro_batches = a.nsamples / a.micro;
  std::printf(
      "block: hidden %lld, %lld heads; micro-batch %lld x %lld tokens; calibration %lld x "
      "%lld\n\n",
      static_cast<long long>(h), static_cast<long long>(a.heads), static_cast<long long>(a.micro),
      static_cast<long long>(a.seq), static_cast<long long>(a.nsamples),
      static_cast<long long>(a.seq));
  std::printf("%-34s %-26s %10s %9s %8s  %s\n", "phase", "shape", "time [s]", "TFLOP/s", "of peak",
              "plan assumes TFLOP/s");

  // 1. Forward of one micro-batch: up to each linear's input (the partial
  //    forwards of true_sequential), then the whole block.
  std::array<double, kNumLinears> t_partial{};
  double t_full = 0;
  // Exact, then fast (bf16 operands on tensor cores): the projection below uses the fast
  // times, the GPU's default precision.
  for (const Precision prec : {Precision::kExact, Precision::kFast}) {
    be.set_precision(prec);
    const bool fast = prec == Precision::kFast;
    const double assumed = fast ? kBf16Tflops : kFp32Tflops;
    const char* assumed_name = fast ? "kBf16Tflops" : "kFp32Tflops";
    const std::string tag = fast ? " [fast]" : "";
    BlockWeights w = random_block(be, d);
    BlockWorkspace ws(be, d, tokens);
    Buffer x(be, tokens * h);
    random_fill(be, x.data(), tokens * h, 1.0f, 1);
    const double gemm_units[kNumLinears] = {0, 3, 4, 8};  // h^2 GEMM units before linear i
    const double attn = 4.0 * a.micro * a.seq * a.seq * h;
    for (int i = 0; i < kNumLinears; ++i) {
      t_partial[i] =
          seconds(be, 3, [&] { block_forward(be, d, w, a.micro, a.seq, x.data(), ws, {}, i); });
      const double flops = 2.0 * tokens * gemm_units[i] * h * h + (i > 0 ? attn : 0.0);
      rep.line(fmt::format("forward up to linear {} input{}", i, tag),
               fmt::format("{} tokens", tokens), t_partial[i], std::max(flops, 1.0),
               i > 0 ? rep.peak32 : 0, i > 0 ? assumed : 0, assumed_name);
    }
    t_full = seconds(be, 3, [&] { block_forward(be, d, w, a.micro, a.seq, x.data(), ws); });
    rep.line("forward, whole block" + tag, fmt::format("{} tokens", tokens), t_full,
             24.0 * tokens * h * h + attn, rep.peak32, assumed, assumed_name);
  }

  // 2. Hessian accumulation of one micro-batch (syrk + mirror), inputs of
  //    width h (qkv, dense, h_to_4h) and 4h (4h_to_h).
  std::array<double, 2> t_hess{};
  for (const Precision prec : {Precision::kExact, Precision::kFast}) {
    be.set_precision(prec);
    const bool fast = prec == Precision::kFast;
    const std::array<int64_t, 2> dims = {h, d.ffn};
    for (int k = 0; k < 2; ++k) {
      HessianAccumulator acc(be, dims[k]);
      Buffer x(be, tokens * dims[k]);
      random_fill(be, x.data(), tokens * dims[k], 1.0f, 2);
      t_hess[k] = seconds(be, 3, [&] { acc.add(x.data(), tokens, a.micro); });
      rep.line(fast ? "Hessian X^T X [fast]" : "Hessian X^T X",
               fmt::format("{} x {}", tokens, dims[k]), t_hess[k],
               static_cast<double>(tokens) * dims[k] * (dims[k] + 1), rep.peak32,
               fast ? kBf16Tflops : kFp32Tflops, fast ? "kBf16Tflops" : "kFp32Tflops");
    }
  }

  be.set_precision(Precision::kExact);  // the factorization and GPTQ are fp32/fp64 in both

  // A well-conditioned SPD matrix: I + X^T X / k for a random X [k, n].
  auto spd = [&](int64_t n, Buffer& out) {
    const int64_t k = 1024;
    Buffer x(be, k * n), ones(be, n);
    random_fill(be, x.data(), k * n, 1.0f, 3);
    be.fill(ones.data(), 1.0f, n);
    be.fill(out.data(), 0.0f, n * n);
    be.copy_2d(n, 1, ones.data(), 1, out.data(), n + 1);  // the diagonal
    be.xtx(k, n, x.data(), 1.0f, 1.0f / k, out.data());
  };

  // 3. The factorization U = chol(H^-1) in fp64 (potrf + trtri: 2 n^3 / 3).
  std::array<double, 2> t_factor{};
  {
    const std::array<int64_t, 2> dims = {h, d.ffn};
    for (int k = 0; k < 2; ++k) {
      const int64_t n = dims[k];
      Buffer hm(be, n * n), work(be, n * n);
      spd(n, hm);
      t_factor[k] = seconds(be, 1, [&] {
        be.copy(work.data(), hm.data(), n * n);
        GPTQD_CHECK(be.inverse_cholesky_upper(n, work.data()), "SPD matrix not factorized");
      });
      rep.line("inverse_cholesky_upper (fp64)", fmt::format("{} x {}", n, n), t_factor[k],
               2.0 * n * n * n / 3.0, rep.peak64, kFactorTflops, "kFactorTflops");
    }
  }

  // 4. Quantizing each linear as the worker does (host preparation included).
  //    FLOPs counted: factorization, the block sweeps and the between-block
  //    GEMMs (rows * cols^2 in all), and the two output_error GEMMs.
  std::array<double, kNumLinears> t_quant{};
  {
    const std::array<std::array<int64_t, 2>, kNumLinears> shapes = {
        {{3 * h, h}, {h, h}, {d.ffn, h}, {h, d.ffn}}};
    const char* names[kNumLinears] = {"query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"};
    for (int i = 0; i < kNumLinears; ++i) {
      const int64_t rows = shapes[i][0], cols = shapes[i][1];
      std::vector<float> hh;
      {
        Buffer hm(be, cols * cols);
        spd(cols, hm);
        hh = hm.to_host();
      }
      const std::vector<float> w = random_host(rows * cols, 0.02f, 20 + i);
      GptqOptions opt;
      opt.label = names[i];
      const auto t0 = Clock::now();
      const QuantizedLayer q = gptq_quantize(be, w.data(), rows, cols, hh.data(), opt);
      const QuantizedLayer r = rtn_quantize(be, w.data(), rows, cols, opt);
      const double e1 = output_error(be, w.data(), q.dequant.data(), rows, cols, hh.data());
      const double e2 = output_error(be, w.data(), r.dequant.data(), rows, cols, hh.data());
      t_quant[i] = std::chrono::duration<double>(Clock::now() - t0).count();
      const double c = static_cast<double>(cols), rr = static_cast<double>(rows);
      rep.line(fmt::format("quantize {}", names[i]), fmt::format("{} x {}", rows, cols), t_quant[i],
               2.0 * c * c * c / 3.0 + rr * c * c + 4.0 * rr * c * c, rep.peak32, kFp32Tflops,
               "kFp32Tflops");
      std::printf("%-34s (GPTQ / RTN output error: %.3f)\n", "", e1 / e2);
    }
  }

  // Projection: per block, with true_sequential, every micro-batch goes through
  // the partial forward up to linear i and linear i's Hessian (i = 0..3), then
  // the final forward; each linear is quantized once.
  // With R replicas the samples (forwards, Hessians) and the rows (sweep,
  // output errors) split R ways; the factorization of each H does not.
  double fwd = 0, hess = 0, quant = 0, quant_r = 0;
  for (int i = 0; i < kNumLinears; ++i) {
    const int k = i == kFourHh ? 1 : 0;  // input width 4h, else h
    fwd += t_partial[i];
    hess += t_hess[k];
    quant += t_quant[i];
    quant_r += t_factor[k] + std::max(0.0, t_quant[i] - t_factor[k]) / a.replicas;
  }
  fwd = (fwd + t_full) * micro_batches;
  hess *= micro_batches;
  const double block = fwd + hess + quant;
  std::printf("\nprojection, BLOOM-like model of %lld blocks, %lld x %lld calibration tokens:\n",
              static_cast<long long>(a.blocks), static_cast<long long>(a.nsamples),
              static_cast<long long>(a.seq));
  std::printf(
      "  per block on one GPU: forwards %.1f s + Hessians %.1f s + quantization %.1f s = "
      "%.1f s\n",
      fwd, hess, quant, block);
  std::printf("  whole model on one GPU (one pipeline stage, one replica): %.2f h\n",
              block * a.blocks / 3600.0);
  std::printf("  with %lld replicas splitting samples and rows, ideal (no communication): %.2f h\n",
              static_cast<long long>(a.replicas),
              ((fwd + hess) / a.replicas + quant_r) * a.blocks / 3600.0);
  return 0;
}

}  // namespace
}  // namespace gptqd

int main(int argc, char** argv) {
  try {
    return gptqd::run(gptqd::parse(argc, argv));
  } catch (const gptqd::InputError& e) {
    std::fprintf(stderr, "gpu_gptq: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gpu_gptq: error: %s\n", e.what());
    return 1;
  }
}
