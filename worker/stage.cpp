#include "worker/stage.h"

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <memory>

#include "base/check.h"
#include "base/log.h"
#include "base/timing.h"
#include "worker/activation_stream.h"
#include "worker/stage_parts.h"
#include "worker/transport/liveness.h"

namespace gptqd {
namespace {

int64_t env_block(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return -1;
  char* end = nullptr;
  const long long b = std::strtoll(v, &end, 10);
  GPTQD_INPUT_CHECK(end && *end == '\0' && b >= 0, "{}: '{}' is not a block index", name, v);
  return b;
}

}  // namespace

void test_hook_after_mark(int64_t block) {
  static const int64_t kill_at = env_block("GPTQD_TEST_KILL_AT_BLOCK");
  static const int64_t throw_at = env_block("GPTQD_TEST_THROW_AT_BLOCK");
  if (block == kill_at) {
    GPTQD_LOG_WARN("test hook: GPTQD_TEST_KILL_AT_BLOCK={}: SIGKILL after marking the block",
                   block);
    spdlog::default_logger()->flush();
    std::raise(SIGKILL);
  }
  if (block == throw_at) {
    throw Error(
        fmt::format("test hook: GPTQD_TEST_THROW_AT_BLOCK={}: failing after marking it", block));
  }
}

void test_hook_before_block(int64_t block) {
  static const int64_t stop_at = env_block("GPTQD_TEST_STOP_AT_BLOCK");
  if (block != stop_at) return;
  GPTQD_LOG_WARN("test hook: GPTQD_TEST_STOP_AT_BLOCK={}: SIGSTOP before the block", block);
  spdlog::default_logger()->flush();
  flush_progress();
  std::raise(SIGSTOP);
}

namespace {

// calibration.inputs quantized: each run goes through the pipeline one block after the other;
// the stage's input is the previous stage's quantized output, received while its first block's
// first pass runs, and its last block's output is sent on as it is made.
void run_sequential(StageWork& w) {
  const JobConfig& job = w.job();
  const ModelSpec& d = w.dims();
  const StageRole& role = w.role();
  for (size_t r = 0; r < job.runs.size(); ++r) {
    const QuantConfig& q = job.runs[r];
    set_progress_context(fmt::format("run {} stage {}", q.name, role.stage));
    report_progress("starting the run");
    const std::vector<uint8_t> done = stage_completion(w, q.name);
    const auto run_t0 = SteadyClock::now();
    std::unique_ptr<StreamReceiver> rx;
    if (role.prev_rank >= 0) {
      rx = std::make_unique<StreamReceiver>(w.tp, role.prev_rank, w.act, d.hidden, w.micro,
                                            w.in.stream_window);
    } else {
      embed_stage_input(w);
    }
    std::unique_ptr<StreamSender> tx;
    if (role.next_rank >= 0) {
      tx = std::make_unique<StreamSender>(w.tp, role.next_rank, w.act, d.hidden,
                                          w.in.stream_window);
    }
    BlockClock clock;
    PhaseTimes phases;
    for (int64_t b = role.first_block; b < role.end_block; ++b) {
      const auto t0 = SteadyClock::now();
      set_block_context(w, q, b);
      report_progress("reading its weights");
      if (w.leader) test_hook_before_block(b);
      MicroBatchHooks hooks;
      if (rx && b == role.first_block) {
        hooks.before_read = [&](int64_t first, int64_t count) { rx->before_read(first, count); };
      }
      if (tx && b + 1 == role.end_block) {
        hooks.after_write = [&](int64_t first, int64_t count) { tx->after_write(first, count); };
      }
      const int64_t next = b + 1 < role.end_block          ? b + 1
                           : r + 1 < job.runs.size() ? role.first_block
                                                     : -1;
      BlockWeights bw = take_block(w, b, next, &phases);
      const bool resumed = done[b] != 0;
      if (resumed) {
        report_resumed(w, r, b);
        forward_resumed_block(w, q, b, bw, hooks, &phases);
      } else {
        quantize_and_store(w, r, b, bw, BlockOptions{hooks, job.moe, false, true, &phases});
      }
      clock.done(w, q, b, resumed, seconds_since(t0), role.end_block - b - 1);
    }
    set_progress_context(fmt::format("run {} stage {}", q.name, role.stage));
    report_progress("sending its last activations");
    if (rx) {
      rx->finish();
      phases.wait = rx->waited();  // inside the first block's first pass
      phases.forward = std::max(0.0, phases.forward - phases.wait);
    }
    if (tx) tx->finish();
    log_stage_done(w, q, phases, seconds_since(run_t0));
  }
}

}  // namespace

std::vector<LayerReport> run_stage(Backend& be, Transport& tp, Checkpoint& ckpt,
                                   const StageInputs& in) {
  const JobConfig& job = *in.job;
  const ModelSpec& d = in.dims;
  const StageRole& role = in.role;
  GPTQD_CHECK(in.micro_batch >= 1 && in.stream_window >= 1, "micro-batch {} / window {}",
              in.micro_batch, in.stream_window);
  GPTQD_CHECK((role.replicas == 1) == (in.group == nullptr || in.group->size() == 1),
              "stage has {} replicas but the replica group has {} members", role.replicas,
              in.group ? in.group->size() : 0);
  const int64_t total = job.calibration.nsamples;
  const ShareRange samples = share_of(total, role.replica, role.replicas);
  GPTQD_CHECK(samples.size() > 0, "replica {} of {} has no samples of {}", role.replica,
              role.replicas, total);
  const bool leader = role.replica == 0;

  const int64_t micro = std::min(in.micro_batch, samples.size());
  Activations act = make_activations(be, samples.size(), job.calibration.seqlen, d.hidden, micro,
                                     in.activations_on_host);
  BlockWorkspace ws(be, d, micro * act.seq);
  const ReplicaContext rc{in.group, total, in.factorizer, in.shard_experts};

  std::vector<int32_t> my_tokens;
  if (role.prev_rank < 0) {
    const auto& all = *in.calib_tokens;
    GPTQD_CHECK(static_cast<int64_t>(all.size()) == total * act.seq,
                "{} calibration tokens for {} x {}", all.size(), total, act.seq);
    my_tokens.assign(all.begin() + samples.begin * act.seq, all.begin() + samples.end * act.seq);
  }

  // The leader, which marks the blocks, checks that the weights it reads are those the
  // checkpoint's complete blocks were quantized from, and records them for blocks nothing
  // complete depends on yet. Its error ends the job (the top of the rank logs it and aborts
  // every rank); the other replicas, which read the same weights, stay quiet, so the job ends
  // with one line.
  std::unique_ptr<WeightsGuard> guard;
  if (leader) guard = std::make_unique<WeightsGuard>(ckpt, in.model->dir());

  // Block b+1's weights are read on a background thread while block b computes (the first
  // block's while the first run starts); after the stage's last block, the next run's first.
  BlockPrefetcher weights(be, *in.model, d);
  if (role.end_block > role.first_block) weights.prefetch(role.first_block);
  StageWork w{be, tp, ckpt, in, act, ws, rc, weights, guard.get(), my_tokens, micro, leader, {}};
  if (job.calibration.stages_at_once()) {
    run_concurrent(w);
  } else {
    run_sequential(w);
  }
  return std::move(w.reports);
}

}  // namespace gptqd
