// The memory one rank's worker holds, from the model's shapes and the job's settings: the
// single model behind `gptqd plan`'s figures, the choice between activations on the device
// and in pinned host memory, and docs/gpu.md §5. tests/unit/test_memory_model.cpp holds it
// to what the worker really allocates (Backend::memory_stats on the CPU backend, which
// counts the same buffers the CUDA backend allocates on the device).
//
// Device bytes, with h = hidden, f = ffn, S = seqlen, n = the replica's samples,
// m = micro-batch, and per linear r = its rows per replica (the largest share), c = its
// columns, g = its groups (ceil(c / group_size), 1 for group_size -1), b = min(block_size, c):
//   block_weights  one block (one block is on the device at a time): fp32, except the linears'
//                  weights in bf16 under parallel.precision fast (worker/model_weights.h)
//   embedding      vocab x h fp32 + its norm, stage 0 only, while a run's input is embedded
//                  (loaded for that and freed: never beside a block)
//   activations    on the device: 4 (n + m) S h (the input, replaced in place by the output,
//                  + a micro-batch of scratch for capture passes); on the host: 4 m S h (one
//                  staged micro-batch)
//   workspace      4 m S (7h + f), the forward's buffers
//   scores         attention scores, attention_score_bytes(S, n_head), during forwards
//   hessians       the accumulators alive during a capture forward: true_sequential the
//                  largest 4 c^2, otherwise all four
//   gptq           the largest working set of a layer's quantization, the maximum of
//                    factorization  4rc + 8gr + 4c + 12c^2   (W, scales and zeros, damped
//                                   diagonal, U in fp32 and its fp64 factorization copy)
//                    sweep          5rc + 8gr + 4c^2 + 8rb + 4r (W, scales/zeros, U, codes,
//                                   errors and quantized block, losses)
//                    round-to-nearest 5rc + 8gr,  output error 8rc + 4c^2
//                  (the accumulator is freed before, so it is not in this sum)
//   sequential_state  true_sequential in one pass (worker/sequential_pass.h) with the
//                  activations on the device: 4 n S w, w = the family's kept floats per token
//                  (sequential_state_floats_per_token: the widest group input + what the block
//                  reads beside it, e.g. f for a Llama block's down_proj; + h when the block's
//                  input is kept, calibration.inputs original); alive while a block is quantized
//   bf16_scratch   parallel.precision fast only: the bf16 copy of one GEMM's input,
//                  2 m S c_max over the linears (the weights are resident in bf16; it covers
//                  the Hessian's 2 m S c copy); stream-ordered, alive during a forward or
//                  capture, never during GPTQ
//   peak = activations + max(embedding, sequential_state + block_weights + workspace
//                            + max(scores + hessians + bf16_scratch, gptq))
// Not counted: the CUDA context, cuBLAS / cuSOLVER workspaces, allocator rounding (a few
// hundred MB on a GPU; keep that much free).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/job/job_config.h"
#include "io/model/model_spec.h"

namespace gptqd {

// Where a stage's calibration activations live (parallel.activations in the job's YAML).
enum class ActivationPlacement { kAuto, kDevice, kHost };
// "auto" | "device" | "host"; throws gptqd::Error on anything else (the YAML reader has
// already rejected it with its position).
ActivationPlacement parse_activation_placement(const std::string& name);

// The four linears' shapes (worker/model_weights.h linear_shapes) as doubles, for byte and
// flop formulas.
struct LinearDims {
  double rows, cols;
};
std::vector<LinearDims> linear_dims(const ModelSpec& dims);  // spec.linears order (one kind's)

// Bytes (fp32) of one block's weights (every tensor of block_tensor_specs; the largest block
// kind's where the blocks differ, ModelSpec::kinds) and of the embedding (+ its layer norm).
// device_memory, host_memory and sequential_state_bytes likewise take the largest kind's figure
// of each part.
uint64_t block_weight_bytes(const ModelSpec& dims);
// One block as the device holds it: block_weight_bytes, less 2 bytes per linear weight under
// precision fast (resident in bf16).
uint64_t resident_block_weight_bytes(const ModelSpec& dims, bool fast);
uint64_t embedding_weight_bytes(const ModelSpec& dims);

struct MemoryWorkload {
  int64_t samples = 0;  // this replica's sequences
  int64_t seqlen = 2048;
  int64_t micro_batch = 1;
  int replicas = 1;
  bool true_sequential = true;
  int64_t block_size = 128;  // the largest of the runs'
  int64_t group_size = 128;  // the smallest positive of the runs' (most groups); -1: none
  bool embedding = false;    // stage 0 holds the embedding table
  bool activations_on_host = false;
  bool fast = false;        // parallel.precision fast: bf16 operand copies (bf16_scratch)
  bool kept_input = false;  // calibration.inputs original: the stage's input kept on the host
  // true_sequential in one pass (parallel.sequential_passes, worker/sequential_pass.h), and
  // whether each block's input is kept beside its state (calibration.inputs original).
  bool one_pass = false;
  bool original_inputs = false;
  // Mixtures of experts: how the replicas share the routed experts (worker/expert_shards.h).
  // Sharded, an owner quantizes its experts' rows whole; with activations exchanged a replica
  // holds its own experts' Hessians only (ceil(E / R) of a group's) and keeps the rows it routes
  // to the others on the host until the group's capture ends (at most T_r k rows per expert
  // input kind, T_r every routed expert's with moe.calibration all).
  MoeConfig moe;
  int64_t stage_samples = 0;  // the samples of all the stage's replicas (0: samples x replicas)
};

struct DeviceMemory {
  uint64_t block_weights = 0, embedding = 0, activations = 0, workspace = 0, scores = 0,
           hessians = 0, gptq = 0, bf16_scratch = 0, sequential_state = 0;
  uint64_t peak() const;
};

DeviceMemory device_memory(const ModelSpec& dims, const MemoryWorkload& w);

// Host bytes of the same rank: the current block's original weights (GPTQ reads them) and
// the prefetched next block, as read and in its pinned staging (worker/weight_prefetch.h),
// all fp32; the Hessians on the host (one per
// layer being worked on, all four without true_sequential, + a permuted copy for
// act_order); the largest layer's results (dequantized rows, and the gathered whole with
// replicas); the activations when they live on the host; the stage's kept input under
// concurrent stages (calibration.inputs original, worker/stage_concurrent.cpp); the one pass's
// kept state when the activations live on the host (it lives beside them).
uint64_t host_memory(const ModelSpec& dims, const MemoryWorkload& w);

// The one pass's kept state for the workload (0 without true_sequential or one_pass), wherever
// it lives.
uint64_t sequential_state_bytes(const ModelSpec& dims, const MemoryWorkload& w);

// Where `where` puts the activations of the workload w describes: kHost and kDevice as
// asked; kAuto on the host only when the device peak with them on the device exceeds
// `device_bytes` (0: unknown, never). w.activations_on_host is ignored.
bool activations_on_host(const ModelSpec& dims, MemoryWorkload w, ActivationPlacement where,
                         uint64_t device_bytes);

// parallel.sequential_passes ("auto" | "one" | "partial") for the workload w, whose activations'
// placement is already decided: whether a true-sequential block runs in one pass. "one" and
// "partial" as asked; "auto" one pass unless its kept state does not fit where it lives: the
// device peak with it over `device_budget` (activations on the device), or the host working set
// with it over `host_budget` (on the host); a budget of 0 is unknown and fits. w.one_pass is
// ignored; false without true_sequential.
bool one_pass_sequential(const ModelSpec& dims, MemoryWorkload w, const std::string& setting,
                         uint64_t device_budget, uint64_t host_budget);

// Bytes of memory this machine can give a new job now: MemAvailable of /proc/meminfo (Linux),
// limited by RLIMIT_AS and RLIMIT_DATA when they are set; 0 when unknown (not Linux).
uint64_t host_available_bytes();

}  // namespace gptqd
