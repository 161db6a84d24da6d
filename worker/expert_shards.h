// Routed experts sharded over a stage's replicas (moe.experts: sharded; issue 19 item 3): each
// routed expert has one owner, replica e mod R, which alone holds the expert's summed Hessians,
// factorizes them and quantizes all of the expert's rows; the others receive its dequantized
// weights for the quantized forward. The calibration reaches the owner in one of two ways
// (moe.exchange), chosen per Hessian input on numbers every replica knows before the capture:
//  - activations: the capture keeps an owned expert's rows in its accumulator and the rows
//    routed to another replica's expert in an outbox (host memory); after the capture each
//    expert input's outboxes are gathered at its owner, in the group's input order, and added
//    to its accumulator in replica order. A replica holds the Hessians of its own experts only.
//  - hessians: every replica accumulates a partial Hessian of every expert, weighted by its
//    tokens and summed at the owner (ReplicaGroup::reduce_sum); the others then free theirs.
// auto takes the fewer bytes: activations when an expert's expected rows per replica
// (T k / (E R), or T / R with moe.calibration all) are fewer than its input's width (the
// rows moved against the dim x dim Hessian), the rule coordinator/plan_moe.h models.
// Every collective runs for every expert input in one order on every replica, whether or not
// the replica routed a token to it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/job/job_config.h"
#include "worker/block_quantizer.h"
#include "worker/hessian.h"

namespace gptqd {

// The replica that owns routed expert `expert`, or -1 when experts are not sharded here
// (not a routed expert, one replica, or moe.experts: replicated).
int expert_owner(const ReplicaContext& rc, int expert);

// True when input k's calibration reaches its owner as activations (see above); false for
// unsharded inputs and moe.exchange: hessians. `samples` x `seq` tokens over `replicas`.
bool routes_activations(const ModelSpec& d, int replicas, int64_t samples, int64_t seq,
                        const MoeConfig& moe, int input);

// For the job's log: how each kind of expert input is exchanged, e.g. "activations for the
// experts' gate/up inputs (width 64), Hessians for their down inputs (width 128)"; empty when
// nothing is sharded. `spec` is the model's (its MoE block kind is described).
std::string describe_expert_exchange(const ModelSpec& spec, int replicas, int64_t samples,
                                     int64_t seq, const MoeConfig& moe);

// The capture side of `activations`: the rows of the inputs that route activations and that
// another replica owns, kept on the host until deliver(); and every such input's local count.
class ExpertOutbox {
 public:
  // The owner adds the rows it receives `chunk_rows` at a time (one device buffer of that many
  // rows of the input: worker/memory_model.h counts it).
  ExpertOutbox(Backend& be, const ModelSpec& d, const ReplicaContext& rc, const MoeConfig& moe,
               int64_t seq, int64_t chunk_rows);
  // Whether input k routes activations (fixed for the block).
  bool routes(int input) const { return routes_[static_cast<size_t>(input)]; }
  // Opens input k's capture (called with its accumulators): only open inputs keep rows. A later
  // partial pass of a true-sequential block goes through the inputs of the groups before it
  // again; their rows are delivered already and are not kept twice.
  void open(int input) { open_[static_cast<size_t>(input)] = true; }
  // Called by the capture for every Hessian input: counts the rows of an open routing input and
  // keeps them when another replica owns it. Returns true when the caller must not accumulate
  // them (kept for the owner, or a routing input not open).
  bool take(int input, const float* x, int64_t tokens);
  // Collective: for each routing input of `inputs` (in that order), the outboxes go to its owner,
  // which adds them to acc[k] (its own rows are already there) replica by replica; every
  // replica's totals[k] becomes the input's rows over all replicas. Empties the outboxes and
  // closes the inputs.
  void deliver(const std::vector<int>& inputs,
               std::vector<std::unique_ptr<HessianAccumulator>>& acc, std::vector<int64_t>* totals);

 private:
  Backend* be_;
  const ReplicaContext* rc_;
  int64_t chunk_rows_;
  std::vector<bool> routes_, open_;
  std::vector<int> owner_;                // per input, its expert's owner (-1: not sharded)
  std::vector<int64_t> cols_;             // per input, its width
  std::vector<std::vector<float>> rows_;  // per input, the rows another replica owns
  std::vector<int64_t> count_;            // per input, this replica's rows
};

// After a group's owned expert layers are quantized (the others' LinearResult have no rows):
// every replica gets each sharded layer's statistics (one exchange for the group) and its
// dequantized weights from the owner. Collective over rc.group, in `layers` order.
void share_expert_layers(Backend& be, const ModelSpec& d, BlockWeights& w, BlockResult& result,
                         const std::vector<int>& layers, const ReplicaContext& rc);

}  // namespace gptqd
