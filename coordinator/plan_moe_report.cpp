#include "coordinator/plan_moe_report.h"

#include "base/check.h"
#include "base/log.h"
#include "coordinator/plan_moe.h"
#include "io/job/job_config.h"

namespace gptqd {
namespace {

std::string duration(double s) {
  if (s < 120) return fmt::format("{:.1f} s", s);
  if (s < 7200) return fmt::format("{:.1f} min", s / 60);
  return fmt::format("{:.2f} h", s / 3600);
}
double gb(double bytes) { return bytes / 1e9; }
double gib(double bytes) { return bytes / (1024.0 * 1024.0 * 1024.0); }
std::string count(double n) {
  return n >= 1e9 ? fmt::format("{:.1f} B", n / 1e9) : fmt::format("{:.1f} M", n / 1e6);
}

}  // namespace

bool plan_is_moe(const std::string& job_path) {
  return is_moe_model_type(config_model_type(load_job_config(job_path).model_path));
}

PlanReport make_moe_plan_report(const PlanCmdOptions& opt) {
  JobConfig job = load_job_config(opt.config_path);
  if (!opt.inputs.empty()) job.calibration.inputs = opt.inputs;
  const MoeShape s = moe_shape_of(job.model_path);
  const Machine& m = opt.machine;
  const Workload w = workload_of(job, 2);
  const int64_t stages_requested = opt.stages >= 0 ? opt.stages : job.parallel.stages;
  const double h = static_cast<double>(s.hidden);

  std::string out = fmt::format("gptqd plan {} --ranks {}\n", opt.config_path, opt.ranks);
  out += fmt::format(
      "model    {} ({}): {} blocks ({} dense, {} MoE), hidden {}; {} routed experts of {}, top {}"
      "{}; {} parameters ({} active); weights {} ({:.0f} GB){}\n",
      job.model_path, s.model_type, s.blocks, s.dense_blocks, s.moe_blocks(), s.hidden, s.experts,
      s.expert_ffn, s.top_k,
      s.shared_ffn > 0 ? fmt::format(", shared experts of {} in all", s.shared_ffn) : "",
      count(s.total_params()), count(s.active_params()), s.file_format,
      s.total_params() * s.file_bytes_per_weight / 1e9,
      s.nextn_layers > 0
          ? fmt::format("; {} multi-token-prediction layer(s) skipped", s.nextn_layers)
          : "");
  const double expert_hessians =
      4.0 * s.experts * (h * h + static_cast<double>(s.expert_ffn) * s.expert_ffn);
  out += fmt::format(
      "experts  {} expert linears per run ({} MoE blocks x {} experts x 3); their fp32 "
      "Hessians take {:.1f} GB per MoE block, so they are sharded: each replica owns "
      "ceil({} / replicas) experts\n",
      s.moe_blocks() * s.experts * 3, s.moe_blocks(), s.experts, gb(expert_hessians), s.experts);
  out += fmt::format(
      "work     {} samples x {} tokens; {}; precision {}; moe calibration routed (all: below); "
      "calibration.inputs {} ({})\n",
      w.nsamples, w.seqlen,
      w.true_sequential
          ? fmt::format("true_sequential (parallel.sequential_passes {})", w.sequential_passes)
          : "not true_sequential",
      w.fast ? "fast (bf16 forward and Hessian)" : "exact", job.calibration.inputs,
      w.concurrent ? "the stages quantize at the same time" : "the stages one after the other");
  const int nodes = (opt.ranks + m.ranks_per_node - 1) / m.ranks_per_node;
  out += fmt::format(
      "machine  {} rank(s), {} per node ({} node(s)); {:.1f} GiB device memory per rank; {:g} "
      "TFLOPS fp32, {:g} bf16, {:g} factorization per rank; collectives {:g} GB/s in a node, "
      "{:g} GB/s across nodes; disk {:g} GB/s per node\n",
      opt.ranks, m.ranks_per_node, nodes, gib(static_cast<double>(m.device_mem)), m.tflops,
      m.bf16_tflops, m.factor_tflops, m.link_gbs, m.net_gbs, m.disk_gbs);

  const MoeEstimate e = choose_moe_layout(s, w, m, opt.ranks, stages_requested, false);
  out += fmt::format(
      "\nlayouts ({}):\n  {:>6} {:>8} {:>14} {:>10} {:>10} {:>12} {:>5}\n",
      stages_requested > 0 ? fmt::format("parallel.stages {} chosen", stages_requested)
                           : "parallel.stages auto: the fastest that fits",
      "stages", "replicas", "experts/rank", "one run", "GPU-hours", "device peak", "fits");
  for (const MoeEstimate& x : estimate_moe_layouts(s, w, m, opt.ranks, false))
    out += fmt::format("{} {:>6} {:>8} {:>14} {:>10} {:>10.2f} {:>8.1f} GiB {:>5}\n",
                       x.stages == e.stages ? "*" : " ", x.stages, x.replicas, x.owned_experts,
                       duration(x.run_in_mode(w)), x.run_in_mode(w) * opt.ranks / 3600,
                       gib(x.memory.device()), x.fits ? "yes" : "no");

  const MoePhases& b = e.moe_block;
  out += fmt::format("\nlayout   {} stage(s) x {} replica(s); {} expert(s) per replica\n", e.stages,
                     e.replicas, e.owned_experts);
  out += fmt::format(
      "MoE block  forward {:.2f} s, Hessians {:.2f} s, factorizations {:.2f} s, sweep and "
      "statistics {:.2f} s, routed activations {:.2f} s, Hessian reduce {:.2f} s: {:.2f} s\n",
      b.forward, b.hessian, b.factor, b.sweep, b.routed, b.reduce, b.total());
  if (s.dense_blocks > 0) out += fmt::format("dense block  {:.2f} s\n", e.dense_block_s);
  if (e.replicas > 1)
    out += fmt::format(
        "collectives per MoE block and replica: routed activations {:.2f} GB, against {:.2f} GB "
        "to reduce partial expert Hessians to their owners: {}\n",
        gb(e.routed_bytes), gb(e.hessian_reduce_bytes),
        e.routed_bytes <= e.hessian_reduce_bytes ? "activations are routed to the owners"
                                                 : "partial Hessians are reduced to the owners");
  const MoeMemory& mm = e.memory;
  out += fmt::format(
      "memory per rank  block weights {:.1f} GiB, attention and shared Hessians {:.1f} GiB, "
      "expert Hessians {:.1f} GiB, factorization workspace {:.1f} GiB, activations {:.1f} GiB "
      "({}), {}one sample's scores and routed activations {:.1f} GiB: {:.1f} GiB on the device "
      "of {:.1f} GiB\n",
      gib(mm.weights), gib(mm.attention_hessians), gib(mm.expert_hessians),
      gib(mm.factor_workspace), gib(mm.activations), mm.activations_on_host ? "host" : "device",
      mm.one_pass
          ? fmt::format("true-sequential's kept state for one pass {:.1f} GiB, ", gib(mm.kept))
          : (w.true_sequential ? "true-sequential in partial passes, " : ""),
      gib(mm.per_sample), gib(mm.device()), gib(static_cast<double>(m.device_mem)));
  out += fmt::format(
      "one run  {} ({} MoE blocks {}, {} dense blocks {}, reading the weights {}); {:.2f} "
      "GPU-hours\n",
      duration(e.run_s), s.moe_blocks(), duration(s.moe_blocks() * b.total()), s.dense_blocks,
      duration(s.dense_blocks * e.dense_block_s), duration(e.read_s), e.gpu_hours);
  if (w.concurrent) {
    out += fmt::format(
        "concurrent one run  {} (the original model's forward through the pipeline {}, then "
        "every stage at once); {:.2f} GPU-hours\n",
        duration(e.concurrent_run_s), duration(e.original_forward_s),
        e.concurrent_run_s * opt.ranks / 3600);
  }
  // Both calibration modes at their fastest layout (the job's parallel.stages if it sets one).
  std::string modes = "modes   ";
  for (const bool concurrent : {false, true}) {
    Workload mode = w;
    mode.concurrent = concurrent;
    const MoeEstimate x = choose_moe_layout(s, mode, m, opt.ranks, stages_requested, false);
    // The MoE model does not tell the two concurrent modes apart (plan_moe.h).
    modes += mode_entry(concurrent ? "original or quantized_in_stage" : "quantized", !concurrent,
                        duration(x.run_in_mode(mode)), x.stages, x.replicas,
                        x.run_in_mode(mode) * opt.ranks / 3600, concurrent == w.concurrent);
  }
  out += modes + "\n";
  const MoeEstimate a = choose_moe_layout(s, w, m, opt.ranks, e.stages, true);
  out += fmt::format(
      "moe calibration all (every token through every expert for the Hessians): one run {}, "
      "{:.2f} GPU-hours, {}\n",
      duration(a.run_s), a.gpu_hours, a.fits ? "fits" : "does not fit");
  PlanReport rep;
  rep.text = out;
  rep.fits = e.fits;
  if (!e.fits)
    rep.misfit = fmt::format("{:.1f} GiB per rank on {:.1f} GiB devices at the smallest layout",
                             gib(mm.device()), gib(static_cast<double>(m.device_mem)));
  return rep;
}

}  // namespace gptqd
