#include "coordinator/plan_moe.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "base/check.h"

namespace gptqd {
namespace {

constexpr double kFp32 = 4, kFp64 = 8, kBf16 = 2;
constexpr int64_t kFactorBatch = 4;  // experts factored at once (their fp64 workspaces)

double sq(double x) { return x * x; }
double cube(double x) { return x * x * x; }

// Distinct Hessian sizes of the attention: one per input.
std::vector<double> attention_hessian_cols(const MoeShape& s) {
  std::map<int, double> cols;
  for (const MoeLinear& l : s.attention) cols[l.input] = static_cast<double>(l.cols);
  std::vector<double> out;
  for (const auto& [input, c] : cols) out.push_back(c);
  return out;
}

// Flops per token of one attention pass: its linears and the scores over the seqlen square.
double attention_pass_flops(const MoeShape& s, double seqlen) {
  return 2 * s.attention_params() + 2 * seqlen * static_cast<double>(s.score_width);
}

struct Rates {
  double fwd, fp32, factor, link;
};

// The attention's and a dense MLP's (or the shared expert's) work shared by every replica:
// Hessians of the replica's tokens, factorizations on every replica, rows split over R.
MoePhases common_phases(const MoeShape& s, double mlp_ffn, double tokens_r, int replicas,
                        const Rates& r) {
  const double h = static_cast<double>(s.hidden);
  MoePhases p;
  std::vector<double> cols = attention_hessian_cols(s);
  if (mlp_ffn > 0) {
    cols.push_back(h);  // gate and up share the block's normed hidden state
    cols.push_back(mlp_ffn);
  }
  double hess = 0, factor = 0, reduce = 0;
  for (double c : cols) {
    hess += 2 * tokens_r * sq(c);
    factor += 4.0 / 3.0 * cube(c);
    reduce += 8 * sq(c);
  }
  double sweep = 0;
  for (const MoeLinear& l : s.attention) sweep += static_cast<double>(l.rows) * sq(l.cols);
  sweep += 2 * mlp_ffn * sq(h) + h * sq(mlp_ffn);
  sweep /= replicas;
  p.hessian = hess / r.fwd;
  p.factor = factor / r.factor;
  p.sweep = 5 * sweep / r.fp32;  // the sweep and 4x for the error statistics
  p.reduce = replicas > 1 ? reduce / r.link : 0;
  return p;
}

MoeEstimate estimate(const MoeShape& s, const Workload& w, const Machine& m, int ranks, int stages,
                     bool all_experts) {
  MoeEstimate e;
  e.ranks = ranks;
  e.stages = stages;
  e.replicas = ranks / stages;
  const int R = e.replicas;
  const double h = static_cast<double>(s.hidden), f = static_cast<double>(s.expert_ffn);
  const double fs = static_cast<double>(s.shared_ffn), E = static_cast<double>(s.experts);
  const double k = static_cast<double>(s.top_k);
  const double seqlen = static_cast<double>(w.seqlen);
  const double T = static_cast<double>(w.nsamples) * seqlen, Tr = T / R;
  e.owned_experts = (s.experts + R - 1) / R;
  const double Er = static_cast<double>(e.owned_experts);
  const bool spans_nodes = R > m.ranks_per_node;
  Rates r{(w.fast ? m.bf16_tflops : m.tflops) * 1e12, m.tflops * 1e12, m.factor_tflops * 1e12,
          (spans_nodes ? m.net_gbs : m.link_gbs) * 1e9};

  // Memory of the largest rank (an MoE block; dense blocks are smaller for these models).
  const double replicated = s.attention_params() + h * E + 3 * h * fs;
  MoeMemory& mem = e.memory;
  mem.weights = (replicated + Er * 3 * h * f) * kBf16;
  for (double c : attention_hessian_cols(s)) mem.attention_hessians += kFp32 * sq(c);
  mem.attention_hessians += fs > 0 ? kFp32 * (sq(h) + sq(fs)) : 0;
  mem.expert_hessians = Er * kFp32 * (sq(h) + sq(f));
  mem.factor_workspace = std::min<double>(kFactorBatch, Er) * 2 * kFp64 * sq(h);
  mem.activations = 2 * Tr * h * kFp32;
  mem.per_sample =
      kFp32 * (seqlen * seqlen * static_cast<double>(s.heads) + seqlen * k * (2 * h + 2 * f));
  const double device = static_cast<double>(m.device_mem);
  if (device > 0 && mem.device() > device) mem.activations_on_host = true;
  // True-sequential in one pass (header): kept beside the activations if it fits (auto).
  if (w.true_sequential && w.sequential_passes != "partial") {
    double widest = h;
    for (double c : attention_hessian_cols(s)) widest = std::max(widest, c);
    MoeMemory with = mem;
    with.kept = Tr * widest * kFp32;
    with.one_pass = true;
    if (w.sequential_passes == "one" || device <= 0 || mem.activations_on_host ||
        with.device() <= device)
      mem = with;
  }
  e.fits = device <= 0 || mem.device() <= device;

  // MoE block.
  const double attn = attention_pass_flops(s, seqlen);
  // true_sequential: partial passes to o's input, the experts' input and down's input, and the
  // full pass, or one pass that resumes from its kept state; otherwise one pass to down's input
  // and the full pass.
  const double attn_passes = w.true_sequential ? (mem.one_pass ? 1 : 4) : 2;
  const double router = 2 * h * E, shared = 6 * h * fs;
  // Owned experts' tokens: routed T k / E each, or every token with calibration all.
  const double expert_tokens = all_experts ? T : T * k / E;
  const double expert_fwd = Er * (expert_tokens * 4 * h * f + (T * k / E) * 6 * h * f);
  MoePhases& b = e.moe_block;
  b = common_phases(s, fs, Tr, R, r);
  b.forward = (Tr * (attn_passes * attn + 2 * (router + shared)) + expert_fwd) / r.fwd;
  b.hessian += Er * 2 * expert_tokens * (sq(h) + sq(f)) / r.fwd;
  b.factor += Er * 4.0 / 3.0 * (cube(h) + cube(f)) / r.factor;
  b.sweep += 5 * Er * (2 * f * sq(h) + h * sq(f)) / r.fp32;
  e.routed_bytes = R > 1 ? 5 * Tr * k * h * kFp32 * (R - 1) / R : 0;
  e.hessian_reduce_bytes = R > 1 ? kFp32 * E * (sq(h) + sq(f)) * (R - 1) / R : 0;
  b.routed = std::min(e.routed_bytes, e.hessian_reduce_bytes) / r.link;

  // Dense block: as a dense model's, the MLP's gate and up sharing their input.
  MoePhases d = common_phases(s, static_cast<double>(s.dense_ffn), Tr, R, r);
  d.forward = Tr * (attn_passes * attn + 10 * h * static_cast<double>(s.dense_ffn)) / r.fwd;
  e.dense_block_s = d.total();

  // Weights read once per run: per rank, its stage's blocks' replicated part and its experts.
  const double stage_blocks = std::ceil(static_cast<double>(s.blocks) / stages);
  const double moe_share = static_cast<double>(s.moe_blocks()) / s.blocks;
  const double per_rank_params =
      stage_blocks * (moe_share * (replicated + Er * 3 * h * f) +
                      (1 - moe_share) * (s.attention_params() + 3 * h * s.dense_ffn));
  const double ranks_on_node = std::min(ranks, m.ranks_per_node);
  e.read_s =
      stages * per_rank_params * s.file_bytes_per_weight * ranks_on_node / (m.disk_gbs * 1e9);
  e.run_s = static_cast<double>(s.moe_blocks()) * b.total() +
            static_cast<double>(s.dense_blocks) * e.dense_block_s + e.read_s;
  e.gpu_hours = e.run_s * ranks / 3600;

  // Concurrent stages (header): the original model's forward, then the slowest stage.
  const double moe_pass = (Tr * (attn + router + shared) + (T * k / R) * 6 * h * f) / r.fwd +
                          (R > 1 ? 2 * Tr * k * h * kFp32 * (R - 1) / R / r.link : 0);
  const double dense_pass = Tr * (attn + 6 * h * static_cast<double>(s.dense_ffn)) / r.fwd;
  const double pass = moe_share * moe_pass + (1 - moe_share) * dense_pass;
  const double samples_per_replica = std::max(1.0, std::floor(static_cast<double>(w.nsamples) / R));
  // One stage has no later stage to feed: nothing to forward first.
  e.original_forward_s =
      stages > 1 ? stage_blocks * pass * (1 + (stages - 1) / samples_per_replica) : 0.0;
  e.concurrent_run_s = e.read_s / stages + e.original_forward_s +
                       stage_blocks * (moe_share * b.total() + (1 - moe_share) * e.dense_block_s);

  return e;
}

}  // namespace

std::vector<MoeEstimate> estimate_moe_layouts(const MoeShape& s, const Workload& w,
                                              const Machine& m, int ranks, bool all_experts) {
  std::vector<MoeEstimate> out;
  for (int st = 1; st <= ranks && st <= s.blocks; ++st)
    if (ranks % st == 0) out.push_back(estimate(s, w, m, ranks, st, all_experts));
  return out;
}

MoeEstimate choose_moe_layout(const MoeShape& s, const Workload& w, const Machine& m, int ranks,
                              int64_t stages, bool all_experts) {
  if (stages > 0) {
    GPTQD_INPUT_CHECK(ranks % stages == 0 && stages <= s.blocks,
                      "parallel.stages {}: must divide the {} ranks and be at most the {} blocks",
                      stages, ranks, s.blocks);
    return estimate(s, w, m, ranks, static_cast<int>(stages), all_experts);
  }
  const std::vector<MoeEstimate> all = estimate_moe_layouts(s, w, m, ranks, all_experts);
  GPTQD_INPUT_CHECK(!all.empty(), "no layout of {} ranks", ranks);
  const MoeEstimate* best = nullptr;
  for (const MoeEstimate& e : all) {
    if (!e.fits) continue;
    if (!best || e.run_in_mode(w) < best->run_in_mode(w)) best = &e;
  }
  if (best) return *best;
  best = &all.front();
  for (const MoeEstimate& e : all)
    if (e.memory.device() < best->memory.device()) best = &e;
  return *best;
}

}  // namespace gptqd
