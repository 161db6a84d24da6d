// calibration.inputs original and quantized_in_stage: every stage quantizes at the same time
// (issue 21 item 2).
//
// A stage's input in these modes is what the unquantized model gives it, the same in every run
// of the job. So each stage first takes its input once (stage 0 embeds the tokens, the others
// receive from the previous stage) and keeps a host copy of it, forwards it through its original
// blocks and streams the result to the next stage at once; the original model's forward thus
// crosses the pipeline once, micro-batch by micro-batch. Then every run of the stage restarts
// from the kept input and quantizes the stage's blocks, each followed by its forward (the next
// block's input) through its original weights (original) or its quantized ones
// (quantized_in_stage), without waiting for any other stage.
//
// Resume: a stage takes its input only if some run has a block left in it or after it, and
// forwards it on only if some run has a block left after it: every rank decides from the
// completion it reads at its start, before any later block can be marked (the later stages
// mark nothing before they have received their input from this one), so neighbours agree. In a
// run, the blocks after the stage's last incomplete one are neither read nor forwarded.
#include <algorithm>
#include <memory>

#include "base/check.h"
#include "base/log.h"
#include "base/timing.h"
#include "worker/activation_stream.h"
#include "worker/stage_parts.h"
#include "worker/transport/liveness.h"

namespace gptqd {
namespace {

// The stage's input kept in host memory (pinned on CUDA) for every run.
class KeptInput {
 public:
  KeptInput(Backend& be, Activations& act, int64_t hidden)
      : be_(be),
        act_(act),
        hidden_(hidden),
        row_(act.seq * hidden),
        copy_(be, act.nseq * act.seq * hidden) {}

  // Copies sequences [first, first + count) of the activations into the kept input.
  void keep(int64_t first, int64_t count) {
    float* dst = copy_.data() + first * row_;
    const float* src = act_.seqs(first, hidden_);
    if (act_.on_host()) {
      std::copy(src, src + count * row_, dst);
    } else {
      be_.to_host(dst, src, count * row_);
    }
  }
  // The activations become the kept input again.
  void restore() {
    const int64_t n = act_.nseq * row_;
    if (act_.on_host()) {
      std::copy(copy_.data(), copy_.data() + n, act_.seqs(0, hidden_));
    } else {
      be_.to_device(act_.seqs(0, hidden_), copy_.data(), n);
    }
  }

 private:
  Backend& be_;
  Activations& act_;
  int64_t hidden_, row_;
  HostBuffer copy_;
};

// Blocks [first, n_layer) not complete in some run.
bool work_from(const std::vector<std::vector<uint8_t>>& done, int64_t first) {
  for (const auto& run : done)
    for (size_t b = static_cast<size_t>(first); b < run.size(); ++b)
      if (!run[b]) return true;
  return false;
}

// Takes the stage's input into w.act and `kept`; with `send`, forwards it through the stage's
// original blocks and streams the output to the next stage.
void forward_original_stage(StageWork& w, KeptInput& kept, bool send) {
  const ModelSpec& d = w.dims();
  const StageRole& role = w.role();
  const auto t0 = SteadyClock::now();
  set_progress_context(fmt::format("stage {}: the original model's forward", role.stage));
  std::unique_ptr<StreamReceiver> rx;
  if (role.prev_rank >= 0) {
    report_progress("receiving its input");
    rx = std::make_unique<StreamReceiver>(w.tp, role.prev_rank, w.act, d.hidden, w.micro,
                                          w.in.stream_window);
  } else {
    report_progress("embedding the calibration tokens");
    embed_stage_input(w);
    kept.keep(0, w.act.nseq);
  }
  auto receive = [&](int64_t first, int64_t count) {
    rx->before_read(first, count);
    kept.keep(first, count);
  };
  if (!send) {
    // Nothing after this stage is left to do: the input alone, for the stage's own runs.
    for (int64_t s = 0; rx && s < w.act.nseq; s += w.micro)
      receive(s, std::min(w.micro, w.act.nseq - s));
  } else {
    StreamSender tx(w.tp, role.next_rank, w.act, d.hidden, w.in.stream_window);
    for (int64_t b = role.first_block; b < role.end_block; ++b) {
      set_progress_context(
          fmt::format("stage {}: the original model's forward, block {}", role.stage, b));
      report_progress("reading its weights");
      BlockWeights bw =
          take_block(w, b, b + 1 < role.end_block ? b + 1 : role.first_block, nullptr);
      MicroBatchHooks hooks;
      if (rx && b == role.first_block) hooks.before_read = receive;
      if (b + 1 == role.end_block) {
        hooks.after_write = [&](int64_t first, int64_t count) { tx.after_write(first, count); };
      }
      report_progress("forward through the original block");
      forward_original_block(w.be, d.block(b), bw, w.act, w.micro, w.ws, hooks);
    }
    report_progress("sending its last activations");
    tx.finish();
  }
  if (rx) rx->finish();
  if (w.leader) {
    GPTQD_LOG_INFO(
        "stage {}: the original model's input{} in {:.2f} s, kept for every run; the stage now "
        "quantizes without waiting for the others",
        role.stage,
        send ? fmt::format(" forwarded through blocks {}-{} and sent on", role.first_block,
                           role.end_block - 1)
             : "",
        seconds_since(t0));
  }
}

}  // namespace

void run_concurrent(StageWork& w) {
  const JobConfig& job = w.job();
  const ModelSpec& d = w.dims();
  const StageRole& role = w.role();
  const bool original = job.calibration.original_within_stage();
  std::vector<std::vector<uint8_t>> done;
  for (const QuantConfig& q : job.runs) done.push_back(stage_completion(w, q.name));
  std::unique_ptr<KeptInput> kept;
  if (work_from(done, role.first_block)) {
    kept = std::make_unique<KeptInput>(w.be, w.act, d.hidden);
    forward_original_stage(w, *kept, role.next_rank >= 0 && work_from(done, role.end_block));
  }
  for (size_t r = 0; r < job.runs.size(); ++r) {
    const QuantConfig& q = job.runs[r];
    set_progress_context(fmt::format("run {} stage {}", q.name, role.stage));
    report_progress("starting the run");
    const auto run_t0 = SteadyClock::now();
    // The stage's last block still to quantize in this run (first_block - 1: none).
    int64_t last = role.first_block - 1;
    for (int64_t b = role.first_block; b < role.end_block; ++b)
      if (!done[r][b]) last = b;
    if (last >= role.first_block) kept->restore();
    BlockClock clock;
    PhaseTimes phases;
    for (int64_t b = role.first_block; b < role.end_block; ++b) {
      const auto t0 = SteadyClock::now();
      const bool resumed = done[r][b] != 0;
      if (b > last) {  // complete, and nothing after it in the stage needs its output
        report_resumed(w, r, b);
        clock.done(w, q, b, true, seconds_since(t0), role.end_block - b - 1);
        continue;
      }
      set_block_context(w, q, b);
      report_progress("reading its weights");
      if (w.leader) test_hook_before_block(b);
      const int64_t next = b < last ? b + 1 : r + 1 < job.runs.size() ? role.first_block : -1;
      BlockWeights bw = take_block(w, b, next, &phases);
      if (resumed) {
        report_resumed(w, r, b);
        if (original) {
          const auto fwd_t0 = SteadyClock::now();
          report_progress("forward through the original block");
          forward_original_block(w.be, d.block(b), bw, w.act, w.micro, w.ws, {});
          phases.forward += seconds_since(fwd_t0);
        } else {
          forward_resumed_block(w, q, b, bw, {}, &phases);
        }
      } else {
        quantize_and_store(w, r, b, bw, BlockOptions{{}, job.moe, original, b < last, &phases});
      }
      clock.done(w, q, b, resumed, seconds_since(t0), role.end_block - b - 1);
    }
    log_stage_done(w, q, phases, seconds_since(run_t0));
  }
}

}  // namespace gptqd
