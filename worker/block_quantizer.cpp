#include "worker/block_quantizer.h"

#include <memory>

#include "base/check.h"
#include "base/log.h"
#include "base/timing.h"
#include "worker/expert_shards.h"
#include "worker/sequential_pass.h"
#include "worker/transport/liveness.h"

namespace gptqd {
namespace {

using SliceHook = std::function<void(int64_t, int64_t)>;

// One pass of the block over every sequence, micro-batch by micro-batch. In place: the
// activations become the output. Otherwise each micro-batch is worked on in a copy
// (act.scratch on the device; the staged copy when they live on the host) and the activations
// are left untouched (capture passes, which may stop early).
void forward_pass(Backend& be, const ModelSpec& d, const BlockWeights& w, Activations& act,
                  int64_t micro, BlockWorkspace& ws, bool in_place, const LinearCapture& capture,
                  int stop_after, const SliceHook& before, const SliceHook& after) {
  GPTQD_CHECK(micro > 0, "micro-batch size must be positive");
  const int64_t row = act.seq * d.hidden;
  const int64_t most = std::min(micro, act.nseq) * row;
  if (act.on_host()) {
    GPTQD_CHECK(act.staged.size() >= most,
                "staged activations of {} floats are smaller than a micro-batch ({})",
                act.staged.size(), most);
  } else {
    GPTQD_CHECK(in_place || act.scratch.size() >= most,
                "activation scratch of {} floats is smaller than a micro-batch ({})",
                act.scratch.size(), most);
  }
  for (int64_t s = 0; s < act.nseq; s += micro) {
    const int64_t b = std::min(micro, act.nseq - s);
    if (before) before(s, b);
    float* x = act.seqs(s, d.hidden);
    if (act.on_host()) {
      be.to_device(act.staged.data(), x, b * row);
      x = act.staged.data();
    } else if (!in_place) {
      be.copy(act.scratch.data(), x, b * row);
      x = act.scratch.data();
    }
    block_forward(be, d, w, b, act.seq, x, ws, capture, stop_after);
    if (act.on_host() && in_place) be.to_host(act.seqs(s, d.hidden), x, b * row);
    if (after) {
      be.synchronize();  // the hook hands the slice to a transport
      after(s, b);
    }
  }
}

using Accumulators = std::vector<std::unique_ptr<HessianAccumulator>>;

// One accumulator per Hessian input of groups first..last (LinearSpec::input; one per group in
// dense families), indexed by input, the others null.
// An expert input whose activations go to its owner (ExpertOutbox) is opened there and has an
// accumulator at the owner only.
Accumulators make_accumulators(Backend& be, const ModelSpec& d, const BlockWeights& w, int first,
                               int last, ExpertOutbox& out, const ReplicaContext& rc) {
  Accumulators acc(static_cast<size_t>(d.n_inputs));
  std::string names;
  for (int g = first; g <= last; ++g) {
    for (int k : d.group_inputs(g)) {
      out.open(k);
      const int owner = expert_owner(rc, d.linears[d.input_members(k)[0]].expert);
      if (out.routes(k) && owner != rc.rank()) continue;
      acc[k] = std::make_unique<HessianAccumulator>(be, w.linears[d.input_members(k)[0]].in);
    }
    names += (names.empty() ? "" : ", ") + d.linears[d.group_members(g)[0]].module;
  }
  report_progress(fmt::format("forward and Hessian of {}", names));
  return acc;
}

LinearCapture capture_into(Accumulators& acc, ExpertOutbox& out) {
  return [&acc, &out](int input, const float* x, int64_t tokens, int64_t samples) {
    if (out.take(input, x, tokens)) return;
    if (acc[input]) acc[input]->add(x, tokens, samples);
  };
}

// The stage's H of one input on the host: this replica's (2 / n_r) sum x x^T weighted by n_r / N
// and summed over the replicas. One replica: its H untouched (weight 1), the single-rank result
// exactly. N is the stage's sample count, or for a routed expert (whose samples are its tokens,
// a different number on each replica) the sum of the replicas' counts; *count receives N.
// With an owner (>= 0, a sharded expert) the sum is made at the owner alone and the other
// replicas return an empty H.
std::vector<float> stage_hessian(const HessianAccumulator& acc, const ReplicaContext& rc,
                                 bool routed, int owner, int64_t* count) {
  std::vector<float> h = acc.to_host();
  *count = acc.samples();
  if (rc.size() == 1) return h;
  double total = static_cast<double>(rc.total_samples);
  if (routed) {
    total = static_cast<double>(acc.samples());
    rc.group->allreduce(&total, 1, ReduceOp::kSum);
    *count = static_cast<int64_t>(total);
  }
  GPTQD_CHECK(routed || rc.total_samples > 0, "replicated Hessian needs the stage's sample count");
  const float weight =
      total > 0 ? static_cast<float>(static_cast<double>(acc.samples()) / total) : 0.0f;
  for (float& v : h) v *= weight;
  if (owner >= 0) {
    report_progress("Hessian sum at the expert's owner");
    rc.group->reduce_sum(h.data(), static_cast<int64_t>(h.size()), owner);
    if (rc.group->rank() != owner) return {};
    return h;
  }
  report_progress("Hessian sum over the replicas");
  rc.group->allreduce_sum(h.data(), static_cast<int64_t>(h.size()));
  return h;
}

// GPTQ of one layer with H, or RTN when `rtn_only` (a starved expert, MoeConfig::min_tokens).
LinearResult quantize_linear(Backend& be, LinearWeights& lw, const std::vector<float>& h,
                             const GptqOptions& opt, const ReplicaContext& rc, bool rtn_only) {
  const int parts = rc.size();
  const ShareRange rows = share_of(lw.out, rc.rank(), parts);
  GPTQD_CHECK(rows.size() > 0, "{}: {} rows cannot be split over {} replicas", opt.label, lw.out,
              parts);
  const float* w = lw.host_w.data() + rows.begin * lw.in;
  PhaseClock clock(be);
  LinearResult r;
  r.row_begin = rows.begin;
  r.row_end = rows.end;
  if (rtn_only) {
    r.q = rtn_quantize(be, w, rows.size(), lw.in, opt);
    r.q.loss = 0;
    r.q.damp_used = 0;
  } else {
    r.q = gptq_quantize(be, w, rows.size(), lw.in, h.data(), opt, rc.factorizer);
  }
  r.stats.seconds = clock.lap();
  r.phases.factor = r.q.seconds.factor;
  r.phases.sweep = std::max(0.0, r.stats.seconds - r.q.seconds.factor);
  const QuantizedLayer rtn = rtn_only ? r.q : rtn_quantize(be, w, rows.size(), lw.in, opt);
  r.stats.gptq_loss = r.q.loss;
  r.stats.gptq_err = output_error(be, w, r.q.dequant.data(), rows.size(), lw.in, h.data());
  r.stats.rtn_err = output_error(be, w, rtn.dequant.data(), rows.size(), lw.in, h.data());
  r.stats.damp = r.q.damp_used;
  r.phases.stats = clock.lap();
  if (parts == 1) {
    set_linear_weights(be, lw, r.q.dequant);
    r.phases.gather = clock.lap();
    return r;
  }
  // Whole-layer stats: the error terms are sums over rows; time and damp the largest.
  double sums[3] = {r.stats.gptq_loss, r.stats.gptq_err, r.stats.rtn_err};
  double maxes[2] = {r.stats.seconds, r.stats.damp};
  rc.group->allreduce(sums, 3, ReduceOp::kSum);
  rc.group->allreduce(maxes, 2, ReduceOp::kMax);
  r.stats.gptq_loss = sums[0];
  r.stats.gptq_err = sums[1];
  r.stats.rtn_err = sums[2];
  r.stats.seconds = maxes[0];
  r.stats.damp = maxes[1];
  // Every replica forwards its samples through the whole quantized layer.
  std::vector<float> full(static_cast<size_t>(lw.out * lw.in));
  std::copy(r.q.dequant.begin(), r.q.dequant.end(), full.begin() + rows.begin * lw.in);
  std::vector<int64_t> offsets(static_cast<size_t>(parts) + 1);
  for (int i = 0; i < parts; ++i) offsets[i + 1] = share_of(lw.out, i, parts).end;
  rc.group->allgather_rows(full.data(), offsets, lw.in);
  set_linear_weights(be, lw, full);
  r.phases.gather = clock.lap();
  return r;
}

}  // namespace

Activations make_activations(Backend& be, int64_t nseq, int64_t seq, int64_t hidden, int64_t micro,
                             bool on_host) {
  GPTQD_CHECK(nseq >= 0 && seq > 0 && hidden > 0 && micro > 0,
              "activations of {} x {} x {} in micro-batches of {}", nseq, seq, hidden, micro);
  Activations act;
  act.nseq = nseq;
  act.seq = seq;
  const int64_t staged = std::min(micro, nseq) * seq * hidden;
  if (on_host) {
    act.host = HostBuffer(be, nseq * seq * hidden);
    act.staged = Buffer(be, staged);
  } else {
    act.h = Buffer(be, nseq * seq * hidden);
    act.scratch = Buffer(be, staged);
  }
  return act;
}

ShareRange share_of(int64_t n, int part, int parts) {
  GPTQD_CHECK(parts >= 1 && part >= 0 && part < parts && n >= 0, "share {} of {} of {} items", part,
              parts, n);
  return ShareRange{n * part / parts, n * (part + 1) / parts};
}

BlockResult quantize_block(Backend& be, const ModelSpec& d, BlockWeights& w, Activations& act,
                           int64_t micro, BlockWorkspace& ws, const QuantConfig& q, int64_t block,
                           const ReplicaContext& rc, const BlockOptions& opt) {
  const MicroBatchHooks& hooks = opt.hooks;
  const MoeConfig& moe = opt.moe;
  PhaseTimes phases;
  BlockResult result(d.linears.size());
  ws.capture_all_experts = moe.calibration == "all";
  // The Hessians of one group's inputs (indexed by input; others empty) and their token counts.
  struct InputHessian {
    std::vector<float> h;
    int64_t count = 0;
  };
  // Sharded experts' activations go to their owners after each capture (expert_shards.h).
  ExpertOutbox outbox(be, d, rc, moe, act.seq, std::min(micro, act.nseq) * act.seq);
  // The group's Hessians once its capture is done (delivering the outboxes first).
  auto hessians_of = [&](Accumulators& acc, const std::vector<int>& inputs) {
    std::vector<InputHessian> hs(static_cast<size_t>(d.n_inputs));
    std::vector<int64_t> totals(static_cast<size_t>(d.n_inputs), 0);
    outbox.deliver(inputs, acc, &totals);
    for (int k : inputs) {
      InputHessian& ih = hs[k];
      const int expert = d.linears[d.input_members(k)[0]].expert;
      if (outbox.routes(k)) {  // summed at the owner already; the others hold none
        ih.count = totals[k];
        if (acc[k]) {
          GPTQD_CHECK(acc[k]->samples() == ih.count, "expert input {}: {} rows of {} delivered", k,
                      acc[k]->samples(), ih.count);
          ih.h = acc[k]->to_host();
        }
      } else {
        ih.h = stage_hessian(*acc[k], rc, expert >= 0, expert_owner(rc, expert), &ih.count);
      }
      acc[k].reset();
    }
    return hs;
  };
  auto first_input_of = [&](int expert) {
    for (const LinearSpec& l : d.linears) {
      if (l.expert == expert) return l.input;
    }
    return -1;
  };
  const ReplicaContext alone;  // an owned expert's layers: quantized whole, nothing exchanged
  auto quantize_group = [&](int g, std::vector<InputHessian>& hs) {
    std::vector<int> sharded;  // the group's sharded experts' layers, in order
    for (int k : d.group_inputs(g)) {
      const std::vector<int> members = d.input_members(k);
      const int expert = d.linears[members[0]].expert;
      const bool starved = expert >= 0 && hs[k].count < moe.min_tokens;
      // One line per starved expert, at its first input (gate and up; its down input sees the
      // same tokens and follows the same policy).
      if (starved && rc.rank() == 0 && first_input_of(expert) == k) {
        GPTQD_LOG_INFO(
            "[{}] block {} expert {}: {} calibration token(s) < moe.min_tokens {}: its layers "
            "are quantized with RTN",
            q.name, block, expert, hs[k].count, moe.min_tokens);
      }
      for (int i : members) {
        const std::string label =
            fmt::format("run {} block {} {}", q.name, block, d.linears[i].module);
        const int owner = expert_owner(rc, expert);
        if (owner >= 0) sharded.push_back(i);
        if (owner < 0 || owner == rc.rank()) {
          report_progress(fmt::format("{} of {}", starved ? "RTN" : "GPTQ", d.linears[i].module));
          result[i] = quantize_linear(be, w.linears[i], hs[k].h, gptq_options(q, label),
                                      owner < 0 ? rc : alone, starved);
        }
        result[i].tokens = expert >= 0 ? hs[k].count : -1;
        result[i].starved = starved;
      }
      hs[k] = InputHessian();
    }
    share_expert_layers(be, d, w, result, sharded, rc);
  };
  // Each accumulator is taken to the host and freed before its group is quantized: GPTQ
  // uploads its own copy, and the accumulator of the widest layer (4h_to_h: 13 GB at
  // BLOOM-176B) would otherwise sit beside GPTQ's working set at the device's peak.
  std::unique_ptr<SequentialPass> pass;
  if (q.true_sequential && opt.sequential == SequentialPasses::kOne)
    pass = std::make_unique<SequentialPass>(be, d, act, micro, opt.original_inputs);
  if (q.true_sequential) {
    // Each group's Hessian sees the outputs of the already-quantized groups before it: the one
    // pass goes on to the group's capture (worker/sequential_pass.h), or a partial pass from the
    // block's input stops there.
    for (int g = 0; g < d.n_groups; ++g) {
      const SliceHook before = g == 0 ? hooks.before_read : SliceHook();
      PhaseClock clock(be);
      Accumulators acc = make_accumulators(be, d, w, g, g, outbox, rc);
      if (pass)
        pass->run_to(w, ws, g, capture_into(acc, outbox), before, {});
      else
        forward_pass(be, d, w, act, micro, ws, false, capture_into(acc, outbox), g, before, {});
      phases.forward += clock.lap();
      std::vector<InputHessian> hs = hessians_of(acc, d.group_inputs(g));
      phases.reduce += clock.lap();
      quantize_group(g, hs);
    }
  } else {
    // Every group's Hessians from one partial pass that stops after the last group's capture.
    PhaseClock clock(be);
    const int last = d.n_groups - 1;
    Accumulators acc = make_accumulators(be, d, w, 0, last, outbox, rc);
    forward_pass(be, d, w, act, micro, ws, false, capture_into(acc, outbox), last,
                 hooks.before_read, {});
    phases.forward += clock.lap();
    std::vector<int> inputs(static_cast<size_t>(d.n_inputs));
    for (int k = 0; k < d.n_inputs; ++k) inputs[k] = k;
    std::vector<InputHessian> hs = hessians_of(acc, inputs);
    phases.reduce += clock.lap();
    for (int g = 0; g < d.n_groups; ++g) quantize_group(g, hs);
  }
  for (const LinearResult& r : result) phases += r.phases;  // factor, sweep, stats, gather
  PhaseClock clock(be);
  if (opt.original_inputs) {
    for (LinearWeights& lw : w.linears) set_linear_weights(be, lw, lw.host_w);
  }
  if (opt.forward_output) {
    report_progress(opt.original_inputs ? "forward through the original block"
                                        : "forward through the quantized block");
    if (pass && !opt.original_inputs)  // the rest of the one pass, through the last group
      pass->run_to(w, ws, -1, {}, {}, hooks.after_write);
    else
      forward_pass(be, d, w, act, micro, ws, true, {}, -1, {}, hooks.after_write);
  }
  phases.forward += clock.lap();
  if (opt.phases) *opt.phases += phases;
  return result;
}

void forward_original_block(Backend& be, const ModelSpec& d, BlockWeights& w, Activations& act,
                            int64_t micro, BlockWorkspace& ws, const MicroBatchHooks& hooks) {
  for (LinearWeights& lw : w.linears) set_linear_weights(be, lw, lw.host_w);
  forward_pass(be, d, w, act, micro, ws, true, {}, -1, hooks.before_read, hooks.after_write);
}

void forward_quantized_block(Backend& be, const ModelSpec& d, BlockWeights& w,
                             const std::vector<std::vector<float>>& dequant, Activations& act,
                             int64_t micro, BlockWorkspace& ws, const MicroBatchHooks& hooks) {
  GPTQD_CHECK(dequant.size() == w.linears.size(), "{} dequantized layers for a block of {}",
              dequant.size(), w.linears.size());
  for (size_t i = 0; i < w.linears.size(); ++i) {
    LinearWeights& lw = w.linears[i];
    GPTQD_CHECK(static_cast<int64_t>(dequant[i].size()) == lw.out * lw.in,
                "checkpoint layer {} has {} weights, expected {}", d.linears[i].module,
                dequant[i].size(), lw.out * lw.in);
    set_linear_weights(be, lw, dequant[i]);
  }
  forward_pass(be, d, w, act, micro, ws, true, {}, -1, hooks.before_read, hooks.after_write);
}

}  // namespace gptqd
