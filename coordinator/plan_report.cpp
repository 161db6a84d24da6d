#include "coordinator/plan_report.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

#include "base/check.h"
#include "base/log.h"
#include "coordinator/factorization_auto.h"
#include "coordinator/precision.h"
#include "io/job/job_config.h"
#include "io/model/hf_model.h"

namespace gptqd {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
double gib(uint64_t bytes) { return static_cast<double>(bytes) / kGiB; }

std::string duration(double s) {
  if (s < 1) return fmt::format("{:.0f} ms", s * 1000);
  if (s < 10) return fmt::format("{:.2f} s", s);  // small jobs: what plan_vs_run compares
  if (s < 120) return fmt::format("{:.0f} s", s);
  if (s < 7200) return fmt::format("{:.1f} min", s / 60);
  return fmt::format("{:.2f} h", s / 3600);
}

// Seconds in a few characters, for table cells.
std::string secs(double s) {
  if (s >= 10) return fmt::format("{:.1f}s", s);
  if (s >= 0.1) return fmt::format("{:.2f}s", s);
  return fmt::format("{:.1f}ms", s * 1000);
}

// A unit for a table of sizes or counts: the largest that keeps its biggest entry >= 1.
struct Unit {
  double div;
  const char* name;
};
Unit bytes_unit(double largest) {
  return largest >= kGiB ? Unit{kGiB, "GiB"} : Unit{1024.0 * 1024.0, "MiB"};
}
Unit flops_unit(double largest) {
  if (largest >= 1e12) return {1e12, "TFLOP"};
  if (largest >= 1e9) return {1e9, "GFLOP"};
  return {1e6, "MFLOP"};
}

std::string size_str(uint64_t bytes) {
  const Unit u = bytes_unit(static_cast<double>(bytes));
  return fmt::format("{:.1f} {}", static_cast<double>(bytes) / u.div, u.name);
}

std::string blocks(int64_t a, int64_t b) { return fmt::format("[{}, {})", a, b); }

uint64_t device_peak(const PlanEstimate& e) {
  uint64_t p = 0;
  for (const RankEstimate& r : e.ranks) p = std::max(p, r.device_peak);
  return p;
}

// Both calibration modes at their best layout (the job's parallel.stages, or auto's choice for
// each): what the other mode would give.
std::string modes_line(const ModelSpec& d, int ranks, int64_t stages, const Workload& w,
                       const Machine& m) {
  std::string line = "modes   ";
  // calibration.inputs: quantized, original, quantized_in_stage (they differ by whether the
  // stages work at once and whether a block's output comes from its original weights).
  const char* names[] = {"quantized", "original", "quantized_in_stage"};
  for (int i = 0; i < 3; ++i) {
    Workload mode = w;
    mode.concurrent = i > 0;
    mode.original_inputs = i == 1;
    const Plan p = choose_plan(d, ranks, stages, mode, m);
    const PlanEstimate e = estimate_plan(p, d, mode, m);
    line +=
        mode_entry(names[i], i == 0, duration(e.run_seconds), p.stages, p.replicas,
                   e.run_seconds * ranks / 3600,
                   mode.concurrent == w.concurrent && mode.original_inputs == w.original_inputs);
  }
  return line + "\n";
}

}  // namespace

std::string mode_entry(const std::string& inputs, bool first, const std::string& run, int stages,
                       int replicas, double gpu_hours, bool this_job) {
  return fmt::format("{} calibration.inputs {}: one run {} on {} x {} ({:.2f} GPU-hours){}",
                     first ? "" : ";", inputs, run, stages, replicas, gpu_hours,
                     this_job ? " (this job)" : "");
}

PlanReport make_plan_report(const PlanCmdOptions& opt) {
  JobConfig job = load_job_config(opt.config_path);
  if (!opt.factorization.empty()) job.parallel.factorization = opt.factorization;
  if (!opt.inputs.empty()) job.calibration.inputs = opt.inputs;
  const ModelConfig cfg = load_model_config(job.model_path);
  const ModelSpec d = ModelSpec::of(cfg);
  const Machine& m = opt.machine;

  std::string dtype = opt.dtype, dtype_note = "--dtype";
  if (dtype.empty() && !cfg.torch_dtype.empty()) {
    dtype = cfg.torch_dtype;
    dtype_note = "config.json torch_dtype";
  }
  if (dtype.empty()) {
    dtype = "bf16";
    dtype_note = "assumed: config.json names no torch_dtype; --dtype to change";
  }
  GPTQD_INPUT_CHECK(dtype_bytes(dtype) > 0, "{}/config.json: torch_dtype '{}' is not known",
                    job.model_path, dtype);

  Workload w = workload_of(job, dtype_bytes(dtype));
  if (opt.cpu) {
    w.fast = resolve_precision(job.parallel.precision, false) == Precision::kFast;
    w.factor_route = FactorRoute::kScalapack;
  }
  std::string run_names;
  for (const QuantConfig& q : job.runs) run_names += (run_names.empty() ? "" : ", ") + q.name;
  const int64_t stages_requested = opt.stages >= 0 ? opt.stages : job.parallel.stages;

  std::string out;
  double params = static_cast<double>(block_weight_bytes(d)) / 4 * d.n_layer +
                  static_cast<double>(embedding_weight_bytes(d)) / 4;
  for (const TensorSpec& t : d.final_norm) params += static_cast<double>(t.numel());
  if (!d.lm_head.empty()) params += static_cast<double>(d.vocab) * static_cast<double>(d.hidden);
  out += fmt::format("gptqd plan {} --ranks {}\n", opt.config_path, opt.ranks);
  out += fmt::format(
      "model    {}: {} blocks, hidden {}, {} heads, vocab {}; {} parameters, {} as {} ({})\n",
      job.model_path, d.n_layer, d.hidden, d.n_head, d.vocab,
      params >= 1e9 ? fmt::format("{:.1f} B", params / 1e9) : fmt::format("{:.1f} M", params / 1e6),
      params * w.file_dtype_bytes >= 1e9
          ? fmt::format("{:.1f} GB", params * w.file_dtype_bytes / 1e9)
          : fmt::format("{:.1f} MB", params * w.file_dtype_bytes / 1e6),
      dtype, dtype_note);
  out += fmt::format(
      "work     {} samples x {} tokens; {} run(s) ({}); {}; block_size {}; micro-batch 1; "
      "precision {}; factorization {}; calibration.inputs {} ({})\n",
      w.nsamples, w.seqlen, w.runs, run_names,
      w.true_sequential
          ? fmt::format("true_sequential (parallel.sequential_passes {})", w.sequential_passes)
          : "not true_sequential",
      w.block_size, w.fast ? "fast (bf16 forward and Hessian)" : "exact",
      job.parallel.factorization, job.calibration.inputs,
      w.concurrent ? "the stages quantize at the same time"
                   : "the stages work one after the other");
  const int nodes = (opt.ranks + m.ranks_per_node - 1) / m.ranks_per_node;
  out += fmt::format(
      "machine  {} rank(s), {} per node ({} node(s)); {:.1f} GiB device memory per rank, {:.0f} "
      "GiB "
      "host per node; {:g} TFLOPS fp32, {:g} bf16, {:g} factorization per rank; collectives {:g} "
      "GB/s in a node, {:g} GB/s across nodes; disk {:g} GB/s per node\n",
      opt.ranks, m.ranks_per_node, nodes, gib(m.device_mem), gib(m.host_mem), m.tflops,
      m.bf16_tflops, m.factor_tflops, m.link_gbs, m.net_gbs, m.disk_gbs);

  // Every layout that works, with its estimate: the reasoning behind the automatic choice.
  out +=
      fmt::format("\nlayouts ({}):\n",
                  stages_requested > 0 ? fmt::format("parallel.stages {} chosen", stages_requested)
                                       : "parallel.stages auto: the fastest that fits");
  out +=
      fmt::format("  {:>6} {:>8} {:>11} {:>15} {:>13} {:>6}  {}\n", "stages", "replicas", "one run",
                  fmt::format("job ({} runs)", w.runs), "device peak", "fits", "factorization");
  const Plan plan = choose_plan(d, opt.ranks, stages_requested, w, m);
  for (int s : feasible_stage_counts(d, opt.ranks, w.nsamples)) {
    const PlanEstimate e = estimate_plan(plan_for_stages(d, opt.ranks, s, w, m), d, w, m);
    out += fmt::format("{} {:>6} {:>8} {:>11} {:>15} {:>13} {:>6}  {}\n",
                       s == plan.stages ? "*" : " ", s, opt.ranks / s, duration(e.run_seconds),
                       duration(e.job_seconds), size_str(device_peak(e)), e.fits() ? "yes" : "no",
                       e.factorization.distributed ? "distributed" : "replicated");
  }

  const PlanEstimate e = estimate_plan(plan, d, w, m);
  out += fmt::format("\nlayout   {}\n", plan.describe());
  out += fmt::format("factor   {}\n", describe_factor_decision(e.factorization));
  double largest = 0;
  for (const RankEstimate& r : e.ranks)
    largest = std::max({largest, static_cast<double>(r.weights_file),
                        static_cast<double>(r.device_peak), static_cast<double>(r.host_peak)});
  const Unit mu = bytes_unit(largest);
  auto mem = [&](uint64_t b) { return static_cast<double>(b) / mu.div; };
  const std::string scratch =
      w.fast && !e.ranks.empty()
          ? fmt::format(" + bf16 scratch ({:.2f} {}: precision fast's bf16 copy of a GEMM input)",
                        mem(e.ranks[0].device.bf16_scratch), mu.name)
          : "";
  out += fmt::format(
      "\nmemory per rank, {} (read: the stage's weights as stored, read once per run; then device "
      "memory, worker/memory_model.h: peak = activations + max(embedding, kept + block + "
      "workspace + max(scores + hessians{}, gptq)); acts: where the activations live; kept: "
      "true-sequential's group inputs kept for the one pass, on the device, or {}):\n",
      mu.name, scratch,
      w.true_sequential ? "0 in partial passes (parallel.sequential_passes)"
                        : "0: not true_sequential");
  out += fmt::format(
      "{:>5} {:>5} {:>7} {:>10} {:>7} {:>8} {:>8} {:>9} {:>11} {:>4} {:>7} {:>9} {:>7} {:>8} "
      "{:>8} {:>11} {:>8}  {}\n",
      "rank", "stage", "replica", "blocks", "samples", "read", "block", "embedding", "activations",
      "acts", "kept", "workspace", "scores", "hessians", "gptq", "device peak", "host", "fits");
  PlanReport rep;
  for (const RankEstimate& r : e.ranks) {
    const StagePlan& sp = plan.stage[r.stage];
    const DeviceMemory& dm = r.device;
    out += fmt::format(
        "{:>5} {:>5} {:>7} {:>10} {:>7} {:>8.2f} {:>8.2f} {:>9.2f} {:>11.2f} {:>4} {:>7.2f} "
        "{:>9.2f} {:>7.2f} {:>8.2f} {:>8.2f} {:>11.2f} {:>8.2f}  {}\n",
        r.rank, r.stage, r.replica, blocks(sp.first_block, sp.end_block), r.samples,
        mem(r.weights_file), mem(dm.block_weights), mem(dm.embedding), mem(dm.activations),
        r.activations_on_host ? "host" : "gpu", mem(dm.sequential_state), mem(dm.workspace),
        mem(dm.scores), mem(dm.hessians), mem(dm.gptq), mem(r.device_peak), mem(r.host_peak),
        r.fits_device ? "ok" : "DOES NOT FIT");
    if (!r.fits_device && rep.misfit.empty()) {
      rep.misfit = fmt::format(
          "rank {} (stage {}) needs {:.1f} GiB of device memory, {:.1f} GiB available (--gpu-mem)",
          r.rank, r.stage, gib(r.device_peak), gib(m.device_mem));
    }
  }

  double most = 0;
  for (const StageEstimate& st : e.stages) most = std::max(most, st.flops_per_block.total());
  const Unit fu = flops_unit(most);
  out += fmt::format("\ntime per stage: {} of one block on one replica by phase, then seconds:\n",
                     fu.name);
  out += fmt::format(
      "{:>5} {:>10} {:>8} {:>8} {:>7} {:>6} {:>6} {:>7} {:>10} {:>12} {:>8} "
      "{:>8} {:>10}\n",
      "stage", "blocks", "forward", "hessian", "factor", "sweep", "stats", "total", "compute/b",
      "collective/b", "(GB/b)", "read", "stage/run");
  for (size_t s = 0; s < e.stages.size(); ++s) {
    const StageEstimate& st = e.stages[s];
    const PhaseFlops& f = st.flops_per_block;
    out += fmt::format(
        "{:>5} {:>10} {:>8.1f} {:>8.1f} {:>7.1f} {:>6.1f} {:>6.1f} {:>7.1f} {:>10} {:>12} "
        "{:>8.3g} {:>8} {:>10}\n",
        s, blocks(st.first_block, st.end_block), f.forward / fu.div, f.hessian / fu.div,
        f.factor / fu.div, f.sweep / fu.div, f.stats / fu.div, f.total() / fu.div,
        secs(st.compute_s_per_block), secs(st.collective_s_per_block),
        st.collective_bytes_per_block / 1e9, secs(st.read_s), duration(st.seconds_per_run));
  }
  std::string crossing = "one stage: no activations cross between ranks";
  if (e.stages.size() > 1) {
    crossing = fmt::format(
        "{:.1f} GB of activations per replica and run cross each stage boundary, streamed in "
        "micro-batches while the next stage works",
        e.stages[0].activation_bytes_out / 1e9);
  }
  if (e.concurrent) {
    out += fmt::format(
        "\nestimate: one run {} (the original model's forward through the pipeline, {}, then "
        "every stage at once); the job's {} run(s) {}; {:.2f} GPU-hours per run; {}\n",
        duration(e.run_seconds), duration(e.original_forward_s), w.runs, duration(e.job_seconds),
        e.run_seconds * opt.ranks / 3600, crossing);
  } else {
    out += fmt::format(
        "\nestimate: one run {} (the stages one after the other); the job's {} run(s) {} (a "
        "sweep fills the pipeline); {:.2f} GPU-hours per run; {}\n",
        duration(e.run_seconds), w.runs, duration(e.job_seconds), e.run_seconds * opt.ranks / 3600,
        crossing);
  }
  out += modes_line(d, opt.ranks, stages_requested, w, m);
  out += fmt::format("host memory per node: {} of {}{}\n", size_str(e.host_per_node),
                     size_str(m.host_mem), e.fits_host ? "" : "  DOES NOT FIT");
  if (!e.fits_host && rep.misfit.empty()) {
    rep.misfit =
        fmt::format("a node needs {:.1f} GiB of host memory, {:.1f} GiB available (--host-mem)",
                    gib(e.host_per_node), gib(m.host_mem));
  }
  out += "formulas: coordinator/plan_estimate.h\n";
  rep.text = out;
  rep.fits = e.fits();
  return rep;
}

}  // namespace gptqd
