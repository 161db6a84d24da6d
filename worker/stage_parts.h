// What the two schedules of a stage (worker/stage.cpp: calibration.inputs quantized, one block
// after the other through the pipeline; worker/stage_concurrent.cpp: original, every stage at
// once) share: the stage's working state and the steps that read, store and log a block.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "worker/block_quantizer.h"
#include "worker/stage.h"
#include "worker/weight_prefetch.h"
#include "worker/weights_guard.h"

namespace gptqd {

// One rank's stage while it runs: set up by run_stage, used by both schedules.
struct StageWork {
  Backend& be;
  Transport& tp;
  Checkpoint& ckpt;
  const StageInputs& in;
  Activations& act;       // this replica's share of the samples
  BlockWorkspace& ws;
  const ReplicaContext& rc;
  BlockPrefetcher& weights;
  WeightsGuard* guard;                   // the leader's; null on the other replicas
  const std::vector<int32_t>& tokens;    // stage 0: this replica's calibration tokens
  int64_t micro = 1;                     // sequences per forward call
  bool leader = false;                   // replica 0: writes stats, marks, reports, logs
  std::vector<LayerReport> reports;      // the leader's
  const JobConfig& job() const { return *in.job; }
  const ModelSpec& dims() const { return in.dims; }
  const StageRole& role() const { return in.role; }
  int64_t nblocks() const { return in.role.end_block - in.role.first_block; }
};

// Stage 0's input: the embedded calibration tokens (w.tokens) into w.act. The embedding table
// (14 GB for BLOOM-176B) is loaded for this and freed at once, so it is never on the device
// beside a block's work. The leader's guard admits the embedding first.
void embed_stage_input(StageWork& w);

// The completion map of `run` as every replica of the stage sees it: a block counts as done
// only if all of them read it as done (they read the file independently). Collective.
std::vector<uint8_t> stage_completion(const StageWork& w, const std::string& run);

// Block b of run r was found complete: the leader adds its layers' reports (read back).
void report_resumed(StageWork& w, size_t r, int64_t b);

// Block b's weights (the wait into phases->read unless null), the next block's read started
// when `next` >= 0, and b admitted by the leader's guard before anything is computed from it.
BlockWeights take_block(StageWork& w, int64_t b, int64_t next, PhaseTimes* phases);

// Block b of run r, complete: its quantized weights read back from the checkpoint and w.act
// forwarded through them (into phases->forward).
void forward_resumed_block(StageWork& w, const QuantConfig& q, int64_t b, BlockWeights& bw,
                           const MicroBatchHooks& hooks, PhaseTimes* phases);

// Block b of run r quantized (quantize_block with `opt`, its phases into opt.phases) and
// stored (store_block, into opt.phases->write). opt.phases must be set.
void quantize_and_store(StageWork& w, size_t r, int64_t b, BlockWeights& bw,
                        const BlockOptions& opt);

// Block b of run r was quantized: every replica writes its rows, the leader its stats and the
// routed experts' token counts, and (once every replica's rows are synced) marks the block
// complete. Collective over the replicas.
void store_block(StageWork& w, size_t r, int64_t b, const BlockWeights& bw,
                 const BlockResult& res);

// The "block b ... in N s, tok/s, stage ETA" line of the leader; ETA from the blocks computed
// so far in the run (resumed ones cost nothing).
class BlockClock {
 public:
  void done(const StageWork& w, const QuantConfig& q, int64_t b, bool resumed, double seconds,
            int64_t blocks_left);

 private:
  int64_t computed_ = 0;
  double computed_seconds_ = 0;
};

// The leader's "[run] stage s done in N s" line, then the run's phase times on this replica
// (worker/phase_times.h).
void log_stage_done(const StageWork& w, const QuantConfig& q, const PhaseTimes& phases,
                    double seconds);

// What the rank does, for the liveness rule's stall line (worker/transport/liveness.h).
void set_block_context(const StageWork& w, const QuantConfig& q, int64_t b);

// calibration.inputs original or quantized_in_stage: every run of the stage, all stages at once
// (stage_concurrent.cpp).
void run_concurrent(StageWork& w);

}  // namespace gptqd
