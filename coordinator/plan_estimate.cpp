#include "coordinator/plan_estimate.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <limits>

#include "base/check.h"
#include "coordinator/factorization_auto.h"
#include "kernels/dtype.h"
#include "worker/block_quantizer.h"

namespace gptqd {
namespace {

// upto[g] for `samples` sequences: the flops of the forward up to the input of group g (the
// GEMMs of the groups before it, and the attention once past the first); upto[n_groups] is a
// full pass of the block.
std::vector<double> forward_flops_upto(const ModelSpec& d, const Workload& w, int64_t samples) {
  const double t = static_cast<double>(samples) * static_cast<double>(w.seqlen);
  // Attention (scores and context) over the query width n_head * head_dim; it runs after the
  // first group (the q/k/v projections) in every family.
  const double attn = 4 * t * static_cast<double>(w.seqlen) * static_cast<double>(d.n_head) *
                      static_cast<double>(d.head_dim);
  std::vector<double> upto(static_cast<size_t>(d.n_groups) + 1, 0.0);
  for (int g = 0; g < d.n_groups; ++g) {
    double gemm = 0;
    for (int i : d.group_members(g)) {
      gemm += 2 * t * static_cast<double>(d.linears[i].out) * static_cast<double>(d.linears[i].in);
    }
    upto[g + 1] = upto[g] + gemm + (g == 0 ? attn : 0.0);
  }
  return upto;
}

// Flops of one block for one replica of `replicas` holding `samples` sequences (see header).
PhaseFlops block_flops(const ModelSpec& d, const Workload& w, int64_t samples, int replicas,
                       bool distributed, bool one_pass) {
  const double t = static_cast<double>(samples) * static_cast<double>(w.seqlen);
  const std::vector<double> upto = forward_flops_upto(d, w, samples);
  const double full = upto[d.n_groups];
  PhaseFlops p;
  double partial = 0;  // true_sequential: one partial forward per group after the first
  for (int g = 1; g < d.n_groups; ++g) partial += upto[g];
  if (w.true_sequential && one_pass)  // the captures on the way, then the rest of the pass
    p.forward = w.original_inputs ? upto[d.n_groups - 1] + full : full;
  else
    p.forward = (w.true_sequential ? partial : upto[d.n_groups - 1]) + full;
  // One Hessian per group (its layers share the input); every layer is factorized and swept.
  for (int g = 0; g < d.n_groups; ++g) {
    const double c = static_cast<double>(d.linears[d.group_members(g)[0]].in);
    p.hessian += 2 * t * c * c;
  }
  for (const LinearDims& l : linear_dims(d)) {
    const double rows_r = l.rows / replicas;
    p.factor += 4.0 / 3.0 * l.cols * l.cols * l.cols / (distributed ? replicas : 1);
    p.sweep += rows_r * l.cols * l.cols;
    p.stats += 4 * rows_r * l.cols * l.cols;
  }
  return p;
}

// The block kind with the most weights (ModelSpec::kinds; the one kind of most models).
const ModelSpec& heaviest_kind(const ModelSpec& d) {
  const ModelSpec* best = &d.kind(0);
  double most = -1;
  for (int k = 0; k < d.n_kinds(); ++k) {
    double n = 0;
    for (const LinearSpec& l : d.kind(k).linears)
      n += static_cast<double>(l.out) * static_cast<double>(l.in);
    if (n > most) {
      most = n;
      best = &d.kind(k);
    }
  }
  return *best;
}

// Concurrent stages (header): when each stage's input is ready, e_s, from F_s and M.
void pipeline_original_forward(PlanEstimate& e, double micro_batches) {
  double first_out = 0, last_out = 0;
  for (StageEstimate& st : e.stages) {
    const double f = st.original_forward_s;
    const double a = first_out + f / micro_batches;
    last_out = std::max(last_out + f / micro_batches, a + f * (micro_batches - 1) / micro_batches);
    first_out = a;
    st.ready_s = last_out;
  }
  e.original_forward_s = last_out;
}

// Whether the replicas of one stage sit on one node (ranks are placed node by node).
bool stage_within_node(int replicas, int ranks_per_node) {
  return replicas <= ranks_per_node && ranks_per_node % replicas == 0;
}

uint64_t u64(double x) { return static_cast<uint64_t>(x); }

}  // namespace

int64_t dtype_bytes(const std::string& name) {
  std::string s;
  for (char c : name) s += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (s == "bf16" || s == "bfloat16") return 2;
  if (s == "f16" || s == "fp16" || s == "float16" || s == "half") return 2;
  if (s == "f32" || s == "fp32" || s == "float32" || s == "float") return 4;
  DType t;
  if (parse_dtype(name, &t)) return static_cast<int64_t>(dtype_size(t));
  return 0;
}

MemoryWorkload memory_workload(const Workload& w, int64_t samples, int replicas, bool stage0) {
  MemoryWorkload mw;
  mw.samples = samples;
  mw.seqlen = w.seqlen;
  mw.micro_batch = w.micro_batch;
  mw.replicas = replicas;
  mw.true_sequential = w.true_sequential;
  mw.block_size = w.block_size;
  mw.group_size = w.group_size;
  mw.embedding = stage0;
  mw.fast = w.fast;
  mw.kept_input = w.concurrent;
  mw.original_inputs = w.original_inputs;
  mw.moe = w.moe;
  mw.stage_samples = w.nsamples;
  return mw;
}

FactorSetting parse_factor_setting(const std::string& setting) {
  if (setting == "replicated") return FactorSetting::kReplicated;
  if (setting == "distributed") return FactorSetting::kDistributed;
  GPTQD_INPUT_CHECK(setting == "auto",
                    "parallel.factorization: {} is not one of auto, replicated, distributed",
                    setting);
  return FactorSetting::kAuto;
}

PlanEstimate estimate_plan(const Plan& plan, const ModelSpec& d, const Workload& w,
                           const Machine& m) {
  if (w.factorization == FactorSetting::kAuto) {
    const FactorDecision fd = decide_factorization(plan, d, w, m);
    Workload chosen = w;
    chosen.factorization =
        fd.distributed ? FactorSetting::kDistributed : FactorSetting::kReplicated;
    PlanEstimate e = estimate_plan(plan, d, chosen, m);
    e.factorization = fd;
    return e;
  }
  const bool distributed = w.factorization == FactorSetting::kDistributed;
  GPTQD_CHECK(m.tflops > 0 && m.bf16_tflops > 0 && m.factor_tflops > 0 && m.link_gbs > 0 &&
                  m.net_gbs > 0 && m.disk_gbs > 0,
              "machine rates must be positive");
  const double h = static_cast<double>(d.hidden);
  const double seq = static_cast<double>(w.seqlen);
  // Blocks of several kinds (dense-MLP and MoE blocks): every block is costed as the heaviest
  // kind, an upper bound (the memory figures already take the largest kind's).
  const ModelSpec& k = heaviest_kind(d);
  const auto lin = linear_dims(k);
  const int replicas = plan.replicas;
  const double file_block = static_cast<double>(block_weight_bytes(d)) / 4 * w.file_dtype_bytes;
  const double file_emb = static_cast<double>(embedding_weight_bytes(d)) / 4 * w.file_dtype_bytes;
  const bool local = stage_within_node(replicas, m.ranks_per_node);
  const double bw = (local ? m.link_gbs : m.net_gbs) * 1e9;
  const int stages_per_node = local ? m.ranks_per_node / replicas : 1;

  // The ranks that share a node's host memory.
  const auto ranks_on_node =
      static_cast<uint64_t>(std::max(1, std::min(m.ranks_per_node, plan.world)));
  PlanEstimate e;
  e.factorization.distributed = distributed;
  e.factorization.replicas = replicas;
  e.factorization.route = w.factor_route;
  double max_stage = 0;
  for (int s = 0; s < plan.stages; ++s) {
    const StagePlan& sp = plan.stage[s];
    const int64_t nblocks = sp.end_block - sp.first_block;
    const double stage_file = file_block * nblocks + (s == 0 ? file_emb : 0);
    StageEstimate st;
    st.first_block = sp.first_block;
    st.end_block = sp.end_block;
    st.replicas = replicas;
    bool stage_one_pass = true;
    for (int r = 0; r < replicas; ++r) {
      const int64_t n_r = share_of(w.nsamples, r, replicas).size();
      RankEstimate re;
      re.rank = plan.rank_of(s, r);
      re.stage = s;
      re.replica = r;
      re.samples = n_r;
      re.weights_file = u64(stage_file);
      MemoryWorkload mw = memory_workload(w, n_r, replicas, s == 0);
      mw.activations_on_host = activations_on_host(d, mw, w.activations, m.device_mem);
      re.activations_on_host = mw.activations_on_host;
      mw.one_pass =
          one_pass_sequential(d, mw, w.sequential_passes, m.device_mem, m.host_mem / ranks_on_node);
      re.one_pass = mw.one_pass;
      stage_one_pass = stage_one_pass && mw.one_pass;
      re.device = device_memory(d, mw);
      re.device_peak = re.device.peak();
      re.host_peak = host_memory(d, mw);
      re.fits_device = m.device_mem == 0 || re.device_peak <= m.device_mem;
      e.fits_device = e.fits_device && re.fits_device;
      e.ranks.push_back(re);
      st.samples = std::max(st.samples, n_r);
    }
    st.flops_per_block = block_flops(k, w, st.samples, replicas, distributed, stage_one_pass);
    st.one_pass = w.true_sequential && stage_one_pass;
    if (replicas > 1) {
      double hess_bytes = 0, gather_bytes = 0;
      for (int g = 0; g < k.n_groups; ++g) {  // one Hessian allreduce per group
        const double c = static_cast<double>(k.linears[k.group_members(g)[0]].in);
        hess_bytes += 2 * 4 * c * c;
      }
      double factor_bytes = 0;  // ScaLAPACK's panel broadcasts and the gather of U (fp64)
      for (const LinearDims& l : lin)
        gather_bytes += 4 * l.rows * l.cols * (replicas - 1) / replicas;
      // Per replica of a sqrt(R) x sqrt(R) grid: each of the three factorizations moves about
      // half the fp64 matrix over sqrt(R) (4 cols^2 / sqrt(R) bytes); then every replica
      // gathers the fp32 upper triangle of U its rows need (2 cols^2).
      if (distributed)
        for (const LinearDims& l : lin)
          factor_bytes += (12 / std::sqrt(static_cast<double>(replicas)) + 2) * l.cols * l.cols;
      st.collective_bytes_per_block = hess_bytes + gather_bytes + factor_bytes;
    }
    const PhaseFlops& f = st.flops_per_block;
    const double factor_tflops = distributed && w.factor_route != FactorRoute::kCusolverMp
                                     ? m.factor_tflops / plan_rates::kScalapackSlowdown
                                     : m.factor_tflops;
    st.compute_s_per_block =
        (f.forward + f.hessian) / ((w.fast ? m.bf16_tflops : m.tflops) * 1e12) +
        f.factor / (factor_tflops * 1e12) + (f.sweep + f.stats) / (m.tflops * 1e12);
    st.collective_s_per_block = st.collective_bytes_per_block / bw;
    st.read_s = stage_file * stages_per_node / (m.disk_gbs * 1e9);
    st.seconds_per_run =
        static_cast<double>(nblocks) * (st.compute_s_per_block + st.collective_s_per_block);
    if (w.concurrent) {
      const std::vector<double> upto = forward_flops_upto(k, w, st.samples);
      const double rate = (w.fast ? m.bf16_tflops : m.tflops) * 1e12;
      const double pass = upto.back() / rate;
      // The last block's output is not forwarded: its full pass, or in one pass what follows
      // the last group's capture.
      st.seconds_per_run -= st.one_pass && !w.original_inputs
                                ? (upto.back() - upto[static_cast<size_t>(k.n_groups) - 1]) / rate
                                : pass;
      st.original_forward_s =
          s + 1 < plan.stages ? static_cast<double>(nblocks) * pass + st.read_s : 0.0;
    }
    st.activation_bytes_out =
        s + 1 < plan.stages ? 4 * static_cast<double>(st.samples) * seq * h : 0;
    e.run_seconds += st.seconds_per_run + st.read_s;
    max_stage = std::max(max_stage, st.seconds_per_run);
    e.stages.push_back(st);
  }
  const double runs = static_cast<double>(std::max<int64_t>(w.runs, 1));
  e.job_seconds = e.run_seconds + (runs - 1) * max_stage;
  e.concurrent = w.concurrent;
  if (w.concurrent) {
    const int64_t samples = e.stages.empty() ? 1 : e.stages[0].samples;
    pipeline_original_forward(e, static_cast<double>((samples + w.micro_batch - 1) /
                                                     std::max<int64_t>(w.micro_batch, 1)));
    e.run_seconds = e.job_seconds = 0;
    for (const StageEstimate& st : e.stages) {
      // A stage reads its weights once: in the original model's forward, or (the last stage,
      // which only receives) in its first run; later reads come from the page cache, as for a
      // sweep's later runs in the sequential schedule.
      const double start = st.ready_s + (st.original_forward_s > 0 ? 0.0 : st.read_s);
      e.run_seconds = std::max(e.run_seconds, start + st.seconds_per_run);
      e.job_seconds = std::max(e.job_seconds, start + runs * st.seconds_per_run);
    }
  }
  uint64_t per_rank_host = 0;
  for (const RankEstimate& r : e.ranks) per_rank_host = std::max(per_rank_host, r.host_peak);
  e.host_per_node = per_rank_host * ranks_on_node;
  e.fits_host = m.host_mem == 0 || e.host_per_node <= m.host_mem;
  return e;
}

Plan choose_plan(const ModelSpec& d, int world, int64_t stages_requested, const Workload& w,
                 const Machine& m) {
  if (stages_requested > 0) {
    GPTQD_INPUT_CHECK(stages_requested <= world, "parallel.stages: {} stages for {} rank(s)",
                      stages_requested, world);
    return plan_for_stages(d, world, static_cast<int>(stages_requested), w, m);
  }
  const std::vector<int> counts = feasible_stage_counts(d, world, w.nsamples);
  GPTQD_INPUT_CHECK(!counts.empty(),
                    "parallel.stages auto: no layout of {} rank(s) works for {} blocks and {} "
                    "calibration samples (every replica needs a sample)",
                    world, d.n_layer, w.nsamples);
  Plan best_fit, smallest;
  double best_time = std::numeric_limits<double>::infinity();
  uint64_t best_peak = std::numeric_limits<uint64_t>::max();
  for (int s : counts) {
    Plan p = plan_for_stages(d, world, s, w, m);
    const PlanEstimate e = estimate_plan(p, d, w, m);
    uint64_t peak = 0;
    for (const RankEstimate& r : e.ranks) peak = std::max(peak, r.device_peak);
    if (e.fits() && e.job_seconds < best_time) {
      best_time = e.job_seconds;
      best_fit = p;
    }
    if (peak < best_peak) {
      best_peak = peak;
      smallest = p;
    }
  }
  return best_fit.stage.empty() ? smallest : best_fit;
}

Plan plan_for_stages(const ModelSpec& d, int world, int stages, const Workload& w,
                     const Machine& m) {
  Plan by_weights = make_plan(d, world, stages, w.nsamples, StageBalance::kWeights);
  if (!w.concurrent) return by_weights;
  Plan by_blocks = make_plan(d, world, stages, w.nsamples, StageBalance::kBlocks);
  const double tw = estimate_plan(by_weights, d, w, m).job_seconds;
  const double tb = estimate_plan(by_blocks, d, w, m).job_seconds;
  return tb < tw ? by_blocks : by_weights;
}

Workload workload_of(const JobConfig& job, int64_t file_dtype_bytes) {
  Workload w;
  w.nsamples = job.calibration.nsamples;
  w.seqlen = job.calibration.seqlen;
  w.runs = static_cast<int64_t>(job.runs.size());
  w.true_sequential = false;
  w.block_size = 0;
  w.group_size = -1;
  for (const QuantConfig& q : job.runs) {
    w.true_sequential = w.true_sequential || q.true_sequential;
    w.block_size = std::max(w.block_size, q.block_size);
    if (q.group_size > 0 && (w.group_size < 0 || q.group_size < w.group_size))
      w.group_size = q.group_size;
  }
  w.activations = parse_activation_placement(job.parallel.activations);
  w.fast = job.parallel.precision != "exact";  // auto is fast on the GPUs a plan sizes
  w.factorization = parse_factor_setting(job.parallel.factorization);
  w.concurrent = job.calibration.stages_at_once();
  w.original_inputs = job.calibration.original_within_stage();
  w.sequential_passes = job.parallel.sequential_passes;
  w.moe = job.moe;
  w.file_dtype_bytes = file_dtype_bytes;
  return w;
}

}  // namespace gptqd
