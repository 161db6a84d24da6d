// Memory and time of a mixture-of-experts job (issue 19 item 5), from config.json alone, for
// the design of docs/model-families.md: a stage's R replicas split the calibration samples as
// for dense models and own disjoint sets of routed experts (expert e on replica e mod R); the
// attention, router, shared expert and dense blocks are quantized as dense blocks are (Hessians
// reduced over the replicas, rows of the sweep split). Per MoE block and replica, with
// T = nsamples x seqlen tokens, T_r = T / R, E_r = ceil(E / R) owned experts, k = top_k,
// h = hidden, f = the expert's intermediate size, f_s = the shared experts':
//   forward   T_r x 4 attention passes (true_sequential in partial passes: to o's input, to
//             the experts' input, to down's input, the full pass; in one pass,
//             parallel.sequential_passes and worker/sequential_pass.h, 1: the block resumes
//             from its kept state up to the experts' input; otherwise 2); an attention pass = its
//             linears (2 x rows x cols per token) + scores and context over the full seqlen square
//             (2 x seqlen x score_width per token); the experts' part runs on the owners:
//             T k / R tokens x (4 h f to down's input + 6 h f in the full pass), + router
//             2 h E and shared expert 6 h f_s per token, twice.
//   hessian   attention inputs 2 T_r cols^2 each; shared expert 2 T_r (h^2 + f_s^2); owned
//             experts E_r x 2 (T k / E) (h^2 + f^2) (routed: tokens spread evenly over the
//             experts, the expectation of a balanced router) or E_r x 2 T (h^2 + f^2) with
//             moe.calibration all (and the forward of every token through every owned expert).
//   factor    4/3 cols^3 per Hessian: the attention's and shared expert's on every replica
//             (replicated factorization), the owned experts' once each.
//   sweep     rows cols^2 per linear (attention and shared rows split over R, owned experts
//             whole); stats 4 x the sweep (GPTQ's and RTN's errors).
//   routed    each pass that reaches the experts sends T_r k h fp32 values to their owners
//             ((R - 1) / R of them leave the replica) and, for the passes that continue the
//             block, receives as many back: 5 transfers per block (gate/up input, the pass to
//             down's input and the full pass, both ways but the first). The alternative, every
//             replica's partial expert Hessians reduced to the owners, moves 4 E (h^2 + f^2)
//             (R - 1) / R bytes; the plan takes the cheaper (always the routed activations for
//             the published models) and prints both.
//   reduce    attention and shared expert Hessians reduced and broadcast: 8 sum cols^2 bytes.
// Rates and bandwidths are Machine's (coordinator/plan_rates.h): forward and Hessian at the
// bf16 rate (precision fast, the GPU default) or fp32, factorizations at factor_tflops, the
// rest at fp32; collectives inside a node at link_gbs, a stage spread over nodes at net_gbs.
// Weights are read once per run: each replica the attention, shared and dense weights of its
// stage's blocks and its own experts, as stored (FP8 or bf16), at disk_gbs per node shared by
// the node's ranks. One run = the stages one after another (sequential calibration).
// Concurrent stages (calibration.inputs original or quantized_in_stage, as for dense models,
// coordinator/plan_estimate.h): each stage reads its share of the weights (the read above over
// the stages) and forwards its B = ceil(blocks / stages) blocks once through the original
// model (a full pass per block: attention, router, shared and the owners' experts, with the
// routed activations out and back), the pipeline filling over the replica's M samples: the
// forward takes B x pass x (1 + (stages - 1) / M); then every stage quantizes its B blocks at
// once (the MoE and dense block times above, in the model's proportion).
// Memory per rank (device): its stage's block weights in bf16 (attention, shared, owned
// experts), the Hessians (attention and shared fp32, owned experts fp32), a factorization
// workspace of 4 experts' fp64 h x h pairs, the replica's block input and output (fp32;
// on the host when they do not fit), and one sample's scores, routed inputs and expert
// activations; true-sequential in one pass keeps T_r x the widest of h and the attention's
// inputs beside them (fp32; where the activations are), unless parallel.sequential_passes
// says partial or, under auto, it does not fit the device.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "coordinator/plan_estimate.h"
#include "coordinator/plan_moe_shape.h"

namespace gptqd {

struct MoePhases {
  double forward = 0, hessian = 0, factor = 0, sweep = 0, routed = 0, reduce = 0;
  double total() const { return forward + hessian + factor + sweep + routed + reduce; }
};

struct MoeMemory {
  double weights = 0, attention_hessians = 0, expert_hessians = 0, factor_workspace = 0,
         activations = 0, per_sample = 0;
  double kept = 0;  // true-sequential in one pass: the kept state (0 in partial passes)
  bool activations_on_host = false;
  bool one_pass = false;
  double device() const {
    return weights + attention_hessians + expert_hessians + factor_workspace + per_sample +
           (activations_on_host ? 0 : activations + kept);
  }
};

struct MoeEstimate {
  int ranks = 0, stages = 0, replicas = 0;
  int64_t owned_experts = 0;        // per replica, E_r
  MoePhases moe_block;              // seconds per MoE block
  double dense_block_s = 0;         // seconds per dense block
  double routed_bytes = 0;          // per replica per MoE block, the routed activations
  double hessian_reduce_bytes = 0;  // the alternative: partial expert Hessians to the owners
  double read_s = 0;                // every stage's weight reading, summed
  double run_s = 0;                 // one run, the stages one after the other
  double gpu_hours = 0;             // ranks x run_s
  // Concurrent stages (calibration.inputs original or quantized_in_stage; header): one run.
  double original_forward_s = 0;  // the original model's forward through the pipeline
  double concurrent_run_s = 0;    // its forward + the slowest stage's blocks and reading
  // run_s, or concurrent_run_s when the workload's stages work at the same time.
  double run_in_mode(const Workload& w) const { return w.concurrent ? concurrent_run_s : run_s; }
  MoeMemory memory;  // the largest rank's
  bool fits = true;
};

// Every layout of `ranks` into stages x replicas (stages dividing ranks, at most the block
// count) with its estimate.
std::vector<MoeEstimate> estimate_moe_layouts(const MoeShape& s, const Workload& w,
                                              const Machine& m, int ranks, bool all_experts);

// The estimate of `stages` stages (0: the fastest layout that fits, fewer stages on a tie; the
// smallest device peak when none fits). InputError when `stages` does not divide `ranks`.
MoeEstimate choose_moe_layout(const MoeShape& s, const Workload& w, const Machine& m, int ranks,
                              int64_t stages, bool all_experts);

}  // namespace gptqd
