#include "worker/stage_parts.h"

#include <algorithm>

#include "base/check.h"
#include "base/log.h"
#include "base/timing.h"
#include "worker/embedding.h"
#include "worker/transport/liveness.h"

namespace gptqd {
namespace {

LayerData to_layer_data(const LinearResult& r, const LinearWeights& lw) {
  LayerData d;
  d.codes = r.q.codes;
  d.scales = r.q.scales;
  d.zeros = r.q.zeros;
  d.g_idx = r.q.g_idx;
  d.perm = r.q.perm;
  // A layer without a bias stores zeros (the checkpoint's layer_bias says it has none).
  if (lw.host_b.empty()) {
    d.bias.assign(static_cast<size_t>(r.row_end - r.row_begin), 0.0f);
  } else {
    d.bias.assign(lw.host_b.begin() + r.row_begin, lw.host_b.begin() + r.row_end);
  }
  d.stats = r.stats;
  return d;
}

// One line per MoE block: the calibration tokens each expert saw (its gate/up Hessian's count)
// and how many experts fell back to RTN (moe.min_tokens). Nothing for dense blocks.
void log_expert_tokens(const std::string& run, int64_t block, const ModelSpec& d,
                       const BlockResult& res) {
  // Each expert once, at its first linear (its gate), in expert order.
  std::vector<int64_t> tokens(static_cast<size_t>(std::max<int64_t>(d.config.n_experts, 0)), -1);
  std::vector<bool> seen(tokens.size(), false);
  int starved = 0;
  for (size_t i = 0; i < d.linears.size(); ++i) {
    const int e = d.linears[i].expert;
    if (e < 0 || seen[static_cast<size_t>(e)]) continue;
    seen[static_cast<size_t>(e)] = true;
    tokens[static_cast<size_t>(e)] = res[i].tokens;
    starved += res[i].starved ? 1 : 0;
  }
  if (std::find(seen.begin(), seen.end(), true) == seen.end()) return;  // a dense-MLP block
  std::string list;
  for (size_t e = 0; e < tokens.size(); ++e) list += (e ? " " : "") + std::to_string(tokens[e]);
  GPTQD_LOG_INFO(
      "[{}] block {} calibration tokens per expert: {}; {} expert(s) below "
      "moe.min_tokens quantized with RTN",
      run, block, list, starved);
}

}  // namespace

void embed_stage_input(StageWork& w) {
  const ModelSpec& d = w.dims();
  Activations& act = w.act;
  const EmbeddingWeights emb = load_embedding_weights(w.be, *w.in.model, d);
  if (w.guard) w.guard->admit_embedding(emb.digest);
  if (!act.on_host()) {
    embed_tokens(w.be, d, emb, w.tokens, act.seq, act.h.data());
    return;
  }
  const int64_t row = act.seq * d.hidden;
  for (int64_t s = 0; s < act.nseq; s += w.micro) {
    const int64_t b = std::min(w.micro, act.nseq - s);
    const std::vector<int32_t> part(w.tokens.begin() + s * act.seq,
                                    w.tokens.begin() + (s + b) * act.seq);
    embed_tokens(w.be, d, emb, part, act.seq, act.staged.data());
    w.be.to_host(act.seqs(s, d.hidden), act.staged.data(), b * row);
  }
}

std::vector<uint8_t> stage_completion(const StageWork& w, const std::string& run) {
  std::vector<uint8_t> done = w.ckpt.completion(run);
  ReplicaGroup* group = w.in.group;
  if (!group || group->size() == 1) return done;
  std::vector<double> v(done.begin(), done.end());
  group->allreduce(v.data(), static_cast<int64_t>(v.size()), ReduceOp::kMin);
  for (size_t i = 0; i < v.size(); ++i) done[i] = v[i] != 0.0;
  return done;
}

void report_resumed(StageWork& w, size_t r, int64_t b) {
  if (!w.leader) return;
  const ModelSpec& d = w.dims().block(b);
  const std::string& run = w.job().runs[r].name;
  for (int i = 0; i < static_cast<int>(d.linears.size()); ++i) {
    const std::string& layer = d.linears[i].module;
    w.reports.push_back(LayerReport{
        static_cast<int32_t>(r), static_cast<int32_t>(b), i, d.linears[i].out, d.linears[i].in,
        w.ckpt.read_stats(run, b, layer), 1, w.ckpt.read_tokens(run, b, layer)});
  }
}

BlockWeights take_block(StageWork& w, int64_t b, int64_t next, PhaseTimes* phases) {
  const auto t0 = SteadyClock::now();
  BlockWeights bw = w.weights.take(b);
  if (phases) phases->read += seconds_since(t0);
  if (next >= 0) w.weights.prefetch(next);
  if (w.guard) w.guard->admit_block(b, bw.digest);
  return bw;
}

void forward_resumed_block(StageWork& w, const QuantConfig& q, int64_t b, BlockWeights& bw,
                           const MicroBatchHooks& hooks, PhaseTimes* phases) {
  const ModelSpec& d = w.dims().block(b);
  const auto t0 = SteadyClock::now();
  report_progress("reading it back from the checkpoint");
  std::vector<std::vector<float>> deq(d.linears.size());
  for (size_t i = 0; i < d.linears.size(); ++i)
    deq[i] = w.ckpt.dequantize(q.name, b, d.linears[i].module);
  report_progress("forward through the resumed block");
  forward_quantized_block(w.be, d, bw, deq, w.act, w.micro, w.ws, hooks);
  phases->forward += seconds_since(t0);
}

void quantize_and_store(StageWork& w, size_t r, int64_t b, BlockWeights& bw,
                        const BlockOptions& opt) {
  GPTQD_CHECK(opt.phases != nullptr, "quantize_and_store needs the run's phase times");
  BlockOptions o = opt;
  o.sequential = w.in.sequential;
  const BlockResult res = quantize_block(w.be, w.dims().block(b), bw, w.act, w.micro, w.ws,
                                         w.job().runs[r], b, w.rc, o);
  const auto t0 = SteadyClock::now();
  store_block(w, r, b, bw, res);
  opt.phases->write += seconds_since(t0);
}

void store_block(StageWork& w, size_t r, int64_t b, const BlockWeights& bw,
                 const BlockResult& res) {
  const ModelSpec& d = w.dims().block(b);
  const std::string& run = w.job().runs[r].name;
  if (w.leader) log_expert_tokens(run, b, d, res);
  report_progress("writing it to the checkpoint");
  for (int i = 0; i < static_cast<int>(d.linears.size()); ++i) {
    const LinearWeights& lw = bw.linears[i];
    // No rows: an expert another replica owns (ReplicaContext::shard_experts) writes them all.
    const bool writes = res[i].row_end > res[i].row_begin;
    if (writes)
      w.ckpt.write_layer(run, b, d.linears[i].module, res[i].row_begin, res[i].row_end,
                         to_layer_data(res[i], lw));
    // A routed expert's calibration tokens, by the writer of its stats (row 0).
    if (writes && res[i].tokens >= 0 && res[i].row_begin == 0)
      w.ckpt.write_tokens(run, b, d.linears[i].module, res[i].tokens);
    if (w.leader) {
      w.reports.push_back(LayerReport{static_cast<int32_t>(r), static_cast<int32_t>(b), i, lw.out,
                                      lw.in, res[i].stats, 0, res[i].tokens});
    }
  }
  // Complete only once every replica's rows are on disk: each syncs its writes, the barrier
  // orders them before the mark, and replica 0 (which wrote the stats) marks.
  if (w.role().replicas > 1) {
    w.ckpt.sync();
    w.in.group->barrier();
  }
  if (w.leader) {
    report_progress("marking it complete");
    w.ckpt.mark_complete(run, b);
    test_hook_after_mark(b);
  }
}

void BlockClock::done(const StageWork& w, const QuantConfig& q, int64_t b, bool resumed,
                      double seconds, int64_t blocks_left) {
  if (!resumed) {
    ++computed_;
    computed_seconds_ += seconds;
  }
  if (!w.leader) return;
  const StageRole& role = w.role();
  const double eta = computed_ > 0 ? computed_seconds_ / computed_ * blocks_left : 0.0;
  const double tokens = static_cast<double>(w.job().calibration.nsamples * w.act.seq);
  GPTQD_LOG_INFO(
      "[{}] block {} ({}/{} of stage {}, {} replica(s)) {} in {:.2f} s, {:.0f} tok/s, "
      "stage ETA {:.1f} s",
      q.name, b, b - role.first_block + 1, w.nblocks(), role.stage, role.replicas,
      resumed ? "resumed from checkpoint" : "quantized", seconds, tokens / std::max(seconds, 1e-9),
      eta);
}

void log_stage_done(const StageWork& w, const QuantConfig& q, const PhaseTimes& phases,
                    double seconds) {
  if (!w.leader) return;
  const int stage = w.role().stage;
  GPTQD_LOG_INFO("[{}] stage {} done in {:.2f} s", q.name, stage, seconds);
  GPTQD_LOG_INFO("[{}] stage {} phases: {}; other {:.3f} s", q.name, stage, phases.describe(),
                 std::max(0.0, seconds - phases.total()));
}

void set_block_context(const StageWork& w, const QuantConfig& q, int64_t b) {
  const StageRole& role = w.role();
  set_progress_context(fmt::format("run {} block {} of {} ({}/{} of stage {})", q.name, b,
                                   w.dims().n_layer, b - role.first_block + 1, w.nblocks(),
                                   role.stage));
}

}  // namespace gptqd
