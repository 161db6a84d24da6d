// DESIGN.md §3 step 4 for one block: Hessians from a forward over the calibration
// activations, GPTQ per linear layer (true-sequential or not), RTN beside it for the
// report, then the forward with the quantized weights that feeds the next block.
//
// Replicas: the R replicas of a stage each hold a share of the samples (act) and call these
// functions together. Each accumulates its share's Hessian; the group sums them weighted by
// share (H = sum_r (n_r / N) H_r, which is the reference's (2 / N) sum x x^T over all N
// samples up to rounding); each replica quantizes a contiguous slice of every layer's rows
// with that H (GPTQ is row-independent given H, so a slice's codes are the rows a single
// rank would produce); the dequantized slices are allgathered for the quantized forward.
// Routed experts may instead be owned whole by one replica each (ReplicaContext::shard_experts).
// With one replica nothing is exchanged and the results are exactly the single-rank ones.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "io/checkpoint/checkpoint.h"
#include "io/job/job_config.h"
#include "worker/block_forward.h"
#include "worker/gptq.h"
#include "worker/phase_times.h"
#include "worker/transport/transport.h"

namespace gptqd {

// [begin, end) of part `part` of `parts` contiguous near-equal parts of n items:
// [n * part / parts, n * (part + 1) / parts). Used for the samples and the rows of replicas.
struct ShareRange {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};
ShareRange share_of(int64_t n, int part, int parts);

struct LinearResult {
  QuantizedLayer q;  // rows [row_begin, row_end) of the layer (this replica's slice; no rows
                     // for an expert another replica owns: ReplicaContext::shard_experts)
  int64_t row_begin = 0, row_end = 0;
  LayerStats stats;      // the WHOLE layer's: losses and errors summed over the replicas,
                         // seconds the slowest replica's
  int64_t tokens = -1;   // a routed expert's calibration tokens over all replicas; -1 otherwise
  bool starved = false;  // tokens < MoeConfig::min_tokens: quantized with RTN, not GPTQ
  PhaseTimes phases;     // this replica's factor, sweep, stats and gather of the layer
};

using BlockResult = std::vector<LinearResult>;  // one per spec.linears entry, in that order

// GPTQ options from a job's quantization settings (QuantConfig) or a checkpoint
// run's (CkptRunSpec): both carry the same fields.
template <class Settings>
GptqOptions gptq_options(const Settings& q, const std::string& label) {
  GptqOptions o;
  o.bits = q.bits;
  o.group_size = q.group_size;
  o.sym = q.sym;
  o.act_order = q.act_order;
  o.static_groups = q.static_groups;
  o.damp_percent = q.damp_percent;
  o.block_size = q.block_size;
  o.mse_clip = q.mse_clip;
  o.label = label;
  return o;
}

// Calibration activations of a stage (one replica's share): `nseq` sequences of `seq`
// tokens, [nseq*seq, hidden].
struct Activations {
  int64_t nseq = 0, seq = 0;
  // On the device: the block input, replaced by its output, and >= micro * seq * hidden
  // floats of scratch for the passes that must not touch h.
  Buffer h;
  Buffer scratch;
  // Or in host memory (Backend::alloc_host: pinned on CUDA) when they do not fit the device
  // (worker/memory_model.h): h and scratch empty, every pass copies each micro-batch into
  // `staged` (>= micro * seq * hidden floats of device memory) and, in place, back.
  HostBuffer host;
  Buffer staged;

  bool on_host() const { return host.size() > 0; }
  // Sequence `first` in the memory that holds them (what the stage's transports read/write).
  float* seqs(int64_t first, int64_t hidden) {
    return (on_host() ? host.data() : h.data()) + first * seq * hidden;
  }
};

// Activations for nseq sequences of seq tokens, zero on the device or uninitialised on the host.
Activations make_activations(Backend& be, int64_t nseq, int64_t seq, int64_t hidden, int64_t micro,
                             bool on_host);

// The replicas of the stage, as seen by one of them.
struct ReplicaContext {
  ReplicaGroup* group = nullptr;  // null or size 1: this rank alone
  int64_t total_samples = 0;      // N, the samples of all replicas (0: act.nseq)
  // parallel.factorization: distributed with > 1 replicas: every layer's factorization runs
  // once across the same replicas (worker/distributed_factor.h); null: each on its backend.
  HostFactorizer* factorizer = nullptr;
  // parallel.experts: sharded: each routed expert has one owner among the replicas (expert e:
  // replica e % R). The replicas' partial Hessians of its inputs are summed at the owner alone,
  // which quantizes all of its rows (a factorization of its own, never distributed) and sends
  // the dequantized weights to the others; the stats of the group's experts are summed in one
  // exchange. So an expert's Hessian is held and factorized once per stage instead of once per
  // replica. False: every replica quantizes a slice of every expert's rows as for a dense layer.
  bool shard_experts = false;

  int size() const { return group ? group->size() : 1; }
  int rank() const { return group ? group->rank() : 0; }
};

// Micro-batch streaming between stages. before_read(first, count) is called before the block's
// FIRST pass reads sequences [first, first + count) of act.h (the stage's first block receives
// them there); after_write(first, count) right after the LAST pass wrote them (the stage's last
// block sends them). Either may be empty.
struct MicroBatchHooks {
  std::function<void(int64_t first, int64_t count)> before_read, after_write;
};

// Quantizes block `block` of the run (opt.hooks stream its first pass's input in and its last
// pass's output out). On return the backend weights in `w` are the
// dequantized GPTQ weights (all rows) and act.h is the block's output computed with them; with
// original_inputs (calibration.inputs: original) they are the original weights and act.h the
// original block's output, the next block's input in that mode. Without forward_output (a
// stage's last block under concurrent stages, whose output nothing reads) the final pass is not
// run and act.h is left as the block's input (partial passes) or part-way through the block
// (one pass, BlockOptions::sequential).
// Collective over rc.group. Each Hessian input (LinearSpec::input) has its own Hessian; a
// true-sequential step captures all the inputs of its group in one forward. A routed
// expert's Hessian is normalised by its tokens (summed over the replicas, one extra allreduce of
// one number per expert); an expert with fewer than moe.min_tokens is quantized with RTN
// (logged per expert by replica 0; LinearResult::starved).
// How a true-sequential block is traversed: once, keeping each group's input state for all the
// replica's samples (worker/sequential_pass.h), or one partial forward per group from the
// block's input (less memory, about 2.4 passes for a Llama block). The codes are the same.
enum class SequentialPasses { kOne, kPartial };

struct BlockOptions {
  MicroBatchHooks hooks;
  MoeConfig moe;
  bool original_inputs = false;  // calibration.inputs original
  bool forward_output = true;    // see above (false: concurrent stages only)
  PhaseTimes* phases = nullptr;  // when set, the block's phase times are added to it
  SequentialPasses sequential = SequentialPasses::kOne;  // a true-sequential block's traversal
};
BlockResult quantize_block(Backend& be, const ModelSpec& dims, BlockWeights& w, Activations& act,
                           int64_t micro, BlockWorkspace& ws, const QuantConfig& q, int64_t block,
                           const ReplicaContext& rc = {}, const BlockOptions& opt = {});

// Forwards act.h through the block with its original weights (a resumed block under
// calibration.inputs: original).
void forward_original_block(Backend& be, const ModelSpec& dims, BlockWeights& w, Activations& act,
                            int64_t micro, BlockWorkspace& ws, const MicroBatchHooks& hooks = {});

// Replaces w's backend weights with already-quantized ones (resume) and forwards act.h.
void forward_quantized_block(Backend& be, const ModelSpec& dims, BlockWeights& w,
                             const std::vector<std::vector<float>>& dequant, Activations& act,
                             int64_t micro, BlockWorkspace& ws, const MicroBatchHooks& hooks = {});

}  // namespace gptqd
