// bench/sequential_passes: true-sequential in one pass (worker/sequential_pass.h) against the
// partial passes it replaces, the reference, in the same run. One block of a real model
// directory is quantized both ways on the same calibration activations (random, fixed seed),
// interleaved --reps times, one sequence per forward call as `gptqd quantize` runs them; per
// way it prints the fastest round's forward-and-Hessian phase and whole block, the ratio
// (partial / one: above 1 is the one pass faster), the memory the one pass keeps, and whether
// the codes are the same bit for bit (they must be).
//
//   build/bench/sequential_passes [--model DIR] [--block B] [--samples S] [--seq T]
//                                 [--threads N] [--reps R]
// Defaults: models/tiny-bloom, block 0, 128 samples of 128 tokens (the quick start's shapes
// at the sample count), 1 thread, 3 rounds. SmolLM2-135M (scripts/get_smollm2.py):
//   --model models-local/smollm2-135m --samples 128 --seq 512 --threads 2
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "base/check.h"
#include "base/timing.h"
#include "bench_random.h"
#include "io/model/hf_model.h"
#include "kernels/backend.h"
#include "kernels/cpu/blas_kernel_choice.h"
#include "worker/block_quantizer.h"
#include "worker/sequential_pass.h"

namespace gptqd {
namespace {

struct Args {
  std::string model = "models/tiny-bloom";
  int64_t block = 0, samples = 128, seq = 128;
  int threads = 1, reps = 3;
};

Args parse(int argc, char** argv) {
  Args a;
  CLI::App app{"True-sequential in one pass against partial passes, one block of a model"};
  app.add_option("--model", a.model, "model directory")->capture_default_str();
  app.add_option("--block", a.block, "the block quantized")->capture_default_str();
  app.add_option("--samples", a.samples, "calibration sequences")->capture_default_str();
  app.add_option("--seq", a.seq, "tokens per sequence")->capture_default_str();
  app.add_option("--threads", a.threads, "CPU backend threads")->capture_default_str();
  app.add_option("--reps", a.reps, "interleaved rounds (the fastest is kept)")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    std::exit(app.exit(e));
  }
  GPTQD_INPUT_CHECK(a.samples > 0 && a.seq > 0 && a.threads > 0 && a.reps > 0,
                    "samples, seq, threads and reps must be positive");
  return a;
}

struct Round {
  double forward = 0, block = 0;
  BlockResult res;
};

Round quantize(Backend& be, const HfModel& model, const ModelSpec& d, const Args& a,
               const std::vector<float>& x, SequentialPasses passes) {
  BlockWeights w = load_block_weights(be, model, d, a.block);
  Activations act = make_activations(be, a.samples, a.seq, d.hidden, 1, false);
  std::copy(x.begin(), x.end(), act.seqs(0, d.hidden));
  BlockWorkspace ws(be, d, a.seq);
  QuantConfig q;
  q.name = "bench";
  q.bits = 4;
  q.group_size = 128;
  q.act_order = true;
  q.true_sequential = true;
  PhaseTimes phases;
  BlockOptions opt;
  opt.phases = &phases;
  opt.sequential = passes;
  Round r;
  const auto t0 = SteadyClock::now();
  r.res = quantize_block(be, d, w, act, 1, ws, q, a.block, {}, opt);
  r.block = seconds_since(t0);
  r.forward = phases.forward;
  return r;
}

int run(int argc, char** argv) {
  const Args a = parse(argc, argv);
  const HfModel model = HfModel::open(a.model);
  const ModelSpec d = model.spec();
  GPTQD_INPUT_CHECK(a.block >= 0 && a.block < d.n_layer, "--block {}: the model has {} blocks",
                    a.block, d.n_layer);
  d.check_seqlen(a.seq, "--seq");
  auto be = make_cpu_backend(a.threads);
  const std::vector<float> x = bench::random_vector(a.samples * a.seq * d.hidden, 7, 1.0f);
  const double kept = 4.0 * static_cast<double>(a.samples * a.seq) *
                      static_cast<double>(sequential_state_floats_per_token(d, false));
  std::printf(
      "model %s block %lld (%s, hidden %lld, %d groups); %lld samples x %lld tokens, "
      "%d thread(s), %d round(s); the one pass keeps %.1f MiB\n",
      a.model.c_str(), static_cast<long long>(a.block), family_name(d.family),
      static_cast<long long>(d.hidden), d.n_groups, static_cast<long long>(a.samples),
      static_cast<long long>(a.seq), a.threads, a.reps, kept / (1 << 20));
  Round best_one, best_partial;
  best_one.forward = best_one.block = best_partial.forward = best_partial.block = 1e30;
  bool same = true;
  for (int rep = 0; rep < a.reps; ++rep) {
    const Round partial = quantize(*be, model, d, a, x, SequentialPasses::kPartial);
    const Round one = quantize(*be, model, d, a, x, SequentialPasses::kOne);
    for (size_t i = 0; i < one.res.size(); ++i)
      same = same && one.res[i].q.codes == partial.res[i].q.codes &&
             one.res[i].q.scales == partial.res[i].q.scales;
    std::printf(
        "round %d: forward and Hessians %.3f s partial, %.3f s one pass; block %.3f s, "
        "%.3f s\n",
        rep + 1, partial.forward, one.forward, partial.block, one.block);
    best_partial.forward = std::min(best_partial.forward, partial.forward);
    best_partial.block = std::min(best_partial.block, partial.block);
    best_one.forward = std::min(best_one.forward, one.forward);
    best_one.block = std::min(best_one.block, one.block);
  }
  std::printf("| phase | partial passes s | one pass s | partial / one |\n|---|---:|---:|---:|\n");
  std::printf("| forward and Hessians | %.3f | %.3f | %.2fx |\n", best_partial.forward,
              best_one.forward, best_partial.forward / best_one.forward);
  std::printf("| whole block | %.3f | %.3f | %.2fx |\n", best_partial.block, best_one.block,
              best_partial.block / best_one.block);
  std::printf("codes and scales the same bit for bit: %s\n", same ? "yes" : "NO");
  return same ? 0 : 1;
}

}  // namespace
}  // namespace gptqd

int main(int argc, char** argv) {
  gptqd::cpu::choose_blas_kernels(argv);  // the kernels gptqd itself runs
  try {
    return gptqd::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}
