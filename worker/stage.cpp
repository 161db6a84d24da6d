#include "worker/stage.h"

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <deque>
#include <memory>

#include "base/check.h"
#include "base/log.h"
#include "base/timing.h"
#include "worker/block_quantizer.h"
#include "worker/embedding.h"
#include "worker/transport/liveness.h"
#include "worker/weight_prefetch.h"
#include "worker/weights_guard.h"

namespace gptqd {
namespace {

// Stage 0's input: the embedded calibration tokens. The embedding table (14 GB for BLOOM-176B)
// is loaded for this and freed at once, so it is never on the device beside a block's work.
// `guard` (the stage leader's) admits the embedding first.
void embed_stage_input(Backend& be, const HfModel& model, const ModelSpec& d,
                       const std::vector<int32_t>& tokens, int64_t micro, Activations& act,
                       WeightsGuard* guard) {
  const EmbeddingWeights emb = load_embedding_weights(be, model, d);
  if (guard) guard->admit_embedding(emb.digest);
  if (!act.on_host()) {
    embed_tokens(be, d, emb, tokens, act.seq, act.h.data());
    return;
  }
  const int64_t row = act.seq * d.hidden;
  for (int64_t s = 0; s < act.nseq; s += micro) {
    const int64_t b = std::min(micro, act.nseq - s);
    const std::vector<int32_t> part(tokens.begin() + s * act.seq,
                                    tokens.begin() + (s + b) * act.seq);
    embed_tokens(be, d, emb, part, act.seq, act.staged.data());
    be.to_host(act.seqs(s, d.hidden), act.staged.data(), b * row);
  }
}

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

// The stage's input from the previous stage, received micro-batch by micro-batch straight into
// the activations while the first block's first pass runs: at most `window` receives are posted
// ahead. The sender's micro-batches have the same boundaries (same samples, same micro-batch size).
class StreamReceiver {
 public:
  StreamReceiver(Transport& tp, int peer, Activations& act, int64_t hidden, int64_t micro,
                 int window)
      : tp_(tp),
        peer_(peer),
        act_(act),
        hidden_(hidden),
        row_(act.seq * hidden),
        micro_(micro),
        window_(window) {
    post();
  }

  void before_read(int64_t first, int64_t count) {
    GPTQD_CHECK(first == consumed_ && !pending_.empty() && pending_.front().count == count,
                "activation stream from rank {}: micro-batch [{}, +{}) read out of order", peer_,
                first, count);
    const auto t0 = SteadyClock::now();
    pending_.front().transfer->wait();
    pending_.pop_front();
    GPTQD_LOG_DEBUG("stream: sequences [{}, {}) of {} from rank {} in, waited {:.4f} s", first,
                    first + count, act_.nseq, peer_, seconds_since(t0));
    consumed_ += count;
    post();
  }

  // Every sequence must have been consumed by the first pass.
  void finish() const {
    GPTQD_CHECK(consumed_ == act_.nseq && pending_.empty(),
                "activation stream from rank {}: {} of {} sequences consumed", peer_, consumed_,
                act_.nseq);
  }

 private:
  struct Slot {
    int64_t count;
    std::unique_ptr<PendingTransfer> transfer;
  };
  void post() {
    while (static_cast<int>(pending_.size()) < window_ && posted_ < act_.nseq) {
      const int64_t b = std::min(micro_, act_.nseq - posted_);
      pending_.push_back(
          Slot{b, tp_.irecv(act_.seqs(posted_, hidden_), b * row_, peer_, Tag::kActivations)});
      posted_ += b;
    }
  }
  Transport& tp_;
  int peer_;
  Activations& act_;
  int64_t hidden_, row_, micro_;
  int window_;
  int64_t posted_ = 0, consumed_ = 0;
  std::deque<Slot> pending_;
};

// The stage's output to the next stage: each micro-batch of the last block's final pass is sent
// as soon as it is computed, from the activations themselves (no copy); at most `window` sends in
// flight.
class StreamSender {
 public:
  StreamSender(Transport& tp, int peer, Activations& act, int64_t hidden, int window)
      : tp_(tp), peer_(peer), act_(act), hidden_(hidden), row_(act.seq * hidden), window_(window) {}

  void after_write(int64_t first, int64_t count) {
    if (static_cast<int>(pending_.size()) == window_) {
      pending_.front()->wait();
      pending_.pop_front();
    }
    pending_.push_back(
        tp_.isend(act_.seqs(first, hidden_), count * row_, peer_, Tag::kActivations));
    GPTQD_LOG_DEBUG("stream: sequences [{}, {}) of {} to rank {} posted", first, first + count,
                    act_.nseq, peer_);
    sent_ += count;
  }

  // Waits for every send (the activations may be reused after this).
  void finish() {
    for (auto& p : pending_) p->wait();
    pending_.clear();
    GPTQD_CHECK(sent_ == act_.nseq, "activation stream to rank {}: {} of {} sequences sent", peer_,
                sent_, act_.nseq);
  }

 private:
  Transport& tp_;
  int peer_;
  Activations& act_;
  int64_t hidden_, row_;
  int window_;
  int64_t sent_ = 0;
  std::deque<std::unique_ptr<PendingTransfer>> pending_;
};

// The completion map as every replica of the stage sees it: a block counts as done only if
// all of them read it as done (they read the file independently).
std::vector<uint8_t> stage_completion(const Checkpoint& ckpt, const std::string& run,
                                      ReplicaGroup* group) {
  std::vector<uint8_t> done = ckpt.completion(run);
  if (!group || group->size() == 1) return done;
  std::vector<double> v(done.begin(), done.end());
  group->allreduce(v.data(), static_cast<int64_t>(v.size()), ReduceOp::kMin);
  for (size_t i = 0; i < v.size(); ++i) done[i] = v[i] != 0.0;
  return done;
}

int64_t env_block(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return -1;
  char* end = nullptr;
  const long long b = std::strtoll(v, &end, 10);
  GPTQD_INPUT_CHECK(end && *end == '\0' && b >= 0, "{}: '{}' is not a block index", name, v);
  return b;
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
  if (tokens.empty()) return;
  std::string list;
  for (size_t e = 0; e < tokens.size(); ++e) list += (e ? " " : "") + std::to_string(tokens[e]);
  GPTQD_LOG_INFO(
      "[{}] block {} calibration tokens per expert: {}; {} expert(s) below "
      "moe.min_tokens quantized with RTN",
      run, block, list, starved);
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
  const ReplicaContext rc{in.group, total, in.factorizer};

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

  std::vector<LayerReport> reports;
  const int64_t nblocks = role.end_block - role.first_block;
  // Block b+1's weights are read on a background thread while block b computes (the first
  // block's while the first run starts); after the stage's last block, the next run's first.
  BlockPrefetcher weights(be, *in.model, d);
  if (nblocks > 0) weights.prefetch(role.first_block);
  for (size_t r = 0; r < job.runs.size(); ++r) {
    const QuantConfig& q = job.runs[r];
    set_progress_context(fmt::format("run {} stage {}", q.name, role.stage));
    report_progress("starting the run");
    const std::vector<uint8_t> done = stage_completion(ckpt, q.name, in.group);
    const auto run_t0 = SteadyClock::now();
    std::unique_ptr<StreamReceiver> rx;
    if (role.prev_rank >= 0) {
      rx = std::make_unique<StreamReceiver>(tp, role.prev_rank, act, d.hidden, micro,
                                            in.stream_window);
    } else {
      embed_stage_input(be, *in.model, d, my_tokens, micro, act, guard.get());
    }
    std::unique_ptr<StreamSender> tx;
    if (role.next_rank >= 0) {
      tx = std::make_unique<StreamSender>(tp, role.next_rank, act, d.hidden, in.stream_window);
    }
    int64_t computed = 0;
    double computed_seconds = 0;
    for (int64_t b = role.first_block; b < role.end_block; ++b) {
      const auto t0 = SteadyClock::now();
      // What this rank does, for the liveness rule's stall line (worker/transport/liveness.h).
      set_progress_context(fmt::format("run {} block {} of {} ({}/{} of stage {})", q.name, b,
                                       d.n_layer, b - role.first_block + 1, nblocks, role.stage));
      report_progress("reading its weights");
      if (leader) test_hook_before_block(b);
      MicroBatchHooks hooks;
      if (rx && b == role.first_block) {
        hooks.before_read = [&](int64_t first, int64_t count) { rx->before_read(first, count); };
      }
      if (tx && b + 1 == role.end_block) {
        hooks.after_write = [&](int64_t first, int64_t count) { tx->after_write(first, count); };
      }
      BlockWeights w = weights.take(b);
      if (b + 1 < role.end_block) {
        weights.prefetch(b + 1);
      } else if (r + 1 < job.runs.size()) {
        weights.prefetch(role.first_block);
      }
      if (guard) guard->admit_block(b, w.digest);
      const bool resumed = done[b] != 0;
      // calibration.inputs: original: the next block's input is this block's original output.
      const bool original = job.calibration.inputs == "original";
      if (resumed) {
        report_progress("reading it back from the checkpoint");
        std::vector<std::vector<float>> deq(d.linears.size());
        for (int i = 0; i < static_cast<int>(d.linears.size()); ++i) {
          const std::string& layer = d.linears[i].module;
          if (!original) deq[i] = ckpt.dequantize(q.name, b, layer);
          if (leader) {
            reports.push_back(LayerReport{static_cast<int32_t>(r), static_cast<int32_t>(b), i,
                                          d.linears[i].out, d.linears[i].in,
                                          ckpt.read_stats(q.name, b, layer), 1,
                                          ckpt.read_tokens(q.name, b, layer)});
          }
        }
        if (original) {
          report_progress("forward through the original block");
          forward_original_block(be, d, w, act, micro, ws, hooks);
        } else {
          report_progress("forward through the resumed block");
          forward_quantized_block(be, d, w, deq, act, micro, ws, hooks);
        }
      } else {
        const BlockResult res =
            quantize_block(be, d, w, act, micro, ws, q, b, rc, hooks, job.moe, original);
        if (leader) log_expert_tokens(q.name, b, d, res);
        report_progress("writing it to the checkpoint");
        for (int i = 0; i < static_cast<int>(d.linears.size()); ++i) {
          const LinearWeights& lw = w.linears[i];
          ckpt.write_layer(q.name, b, d.linears[i].module, res[i].row_begin, res[i].row_end,
                           to_layer_data(res[i], lw));
          // A routed expert's calibration tokens, by the writer of its stats (row 0).
          if (res[i].tokens >= 0 && res[i].row_begin == 0)
            ckpt.write_tokens(q.name, b, d.linears[i].module, res[i].tokens);
          if (leader) {
            reports.push_back(LayerReport{static_cast<int32_t>(r), static_cast<int32_t>(b), i,
                                          lw.out, lw.in, res[i].stats, 0, res[i].tokens});
          }
        }
        // Complete only once every replica's rows are on disk: each syncs its writes, the
        // barrier orders them before the mark, and replica 0 (which wrote the stats) marks.
        if (role.replicas > 1) {
          ckpt.sync();
          in.group->barrier();
        }
        if (leader) {
          report_progress("marking it complete");
          ckpt.mark_complete(q.name, b);
          test_hook_after_mark(b);
        }
      }
      const double sec = seconds_since(t0);
      const int64_t index = b - role.first_block + 1;
      if (!resumed) {
        ++computed;
        computed_seconds += sec;
      }
      const double eta = computed > 0 ? computed_seconds / computed * (nblocks - index) : 0.0;
      if (leader) {
        GPTQD_LOG_INFO(
            "[{}] block {} ({}/{} of stage {}, {} replica(s)) {} in {:.2f} s, {:.0f} tok/s, "
            "stage ETA {:.1f} s",
            q.name, b, index, nblocks, role.stage, role.replicas,
            resumed ? "resumed from checkpoint" : "quantized", sec,
            static_cast<double>(total * act.seq) / std::max(sec, 1e-9), eta);
      }
    }
    set_progress_context(fmt::format("run {} stage {}", q.name, role.stage));
    report_progress("sending its last activations");
    if (rx) rx->finish();
    if (tx) tx->finish();
    if (leader)
      GPTQD_LOG_INFO("[{}] stage {} done in {:.2f} s", q.name, role.stage, seconds_since(run_t0));
  }
  return reports;
}

}  // namespace gptqd
