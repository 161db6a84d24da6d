// Memory and time of a Plan, from the model's shapes and the job's settings alone (no weights
// are read): what `gptqd plan` prints, and what the automatic stage count minimises.
//
// Per block and per replica, with h = hidden, f = 4h, n_r = the replica's samples,
// T = n_r * seqlen tokens, R = replicas, and for each linear (rows x cols):
// qkv 3h x h, dense h x h, h_to_4h f x h, 4h_to_h h x f, rows_r = rows / R:
//   forward   a pass up to a linear's input: qkv 0, dense 2T*3h^2 + A, h_to_4h 2T*4h^2 + A,
//             4h_to_h 2T*(4h^2 + h f) + A; a full pass 2T*(4h^2 + 2h f) + A, where
//             A = 4 T seqlen h (scores and context over the full seqlen^2 square).
//             true_sequential: the four partial passes + the quantized full pass, or in one
//             pass (parallel.sequential_passes; worker/sequential_pass.h) the full pass alone
//             (up to 4h_to_h + the original full pass under calibration.inputs original);
//             otherwise the pass up to 4h_to_h + the quantized full pass. A stage uses one
//             pass when all its ranks do (memory_model.h one_pass_sequential).
//   hessian   sum 2 T cols^2                      (X^T X, both triangles)
//   factor    sum 4/3 cols^3                      (Cholesky cols^3/3, inverse from it
//                                                  2cols^3/3, Cholesky of the inverse cols^3/3;
//                                                  replicated: every replica factors the whole
//                                                  H; distributed: 1/R of it each)
//   sweep     sum rows_r cols^2                   (GPTQ's lazy-batch updates)
//   stats     sum 4 rows_r cols^2                 (tr((W-Q) H (W-Q)^T) for GPTQ and RTN)
//   collectives (R > 1): the Hessian reduce + broadcast, 2 x 4 sum cols^2 bytes, and the
//             allgather of the dequantized rows, 4 sum rows cols (R-1)/R bytes, at link_gbs
//             when the stage's replicas share a node, else at net_gbs; distributed
//             factorization adds its panel traffic, 3 x 4 cols^2 / sqrt(R) (three
//             factorizations, half of the fp64 matrix each, over a sqrt(R)-wide grid), and the
//             gather of U's fp32 upper triangle, 2 cols^2, summed over the layers.
// Time of a block = forward and hessian flops / (precision fast ? bf16_tflops : tflops)
// + factor flops / factor_tflops (distributed with ScaLAPACK: kScalapackSlowdown times slower)
// + sweep and stats flops / tflops + collective bytes /
// bandwidth (rates: coordinator/plan_rates.h). A stage's time per run is
// the sum over its blocks plus reading its weights once (stage bytes as stored, divided among
// the node's disk bandwidth by the stages that share the node). A job of K runs on S stages
// takes sum_s t_s + (K - 1) max_s t_s (the sweep fills the pipeline); the activations between
// stages (4 T h bytes per run) are streamed while the next stage works and are not counted.
//
// Concurrent stages (calibration.inputs original, worker/stage_concurrent.cpp): the original
// model's forward crosses the pipeline once per job, streamed in M = samples / micro-batch
// micro-batches: stage s forwards its blocks (F_s = blocks x a full pass at the forward rate +
// reading its weights; 0 for the last stage, which only receives), its first micro-batch out at
// a_s = a_{s-1} + F_s / M and its last at e_s = max(e_{s-1} + F_s / M, a_s + F_s (M - 1) / M).
// Then every stage quantizes its runs at once from its kept input: stage s ends at
// e_s + K t_s, with t_s as above less the pass its last block skips (no one reads its output);
// its weights are read once, in F_s (the last stage: before its first run), later runs reading
// them from the page cache as a sequential sweep's later runs do. One run is K = 1; the job is
// the latest stage.
//
// Memory per rank is worker/memory_model.h's: the same model the worker's allocations are
// tested against. activations auto puts a rank's activations on the host when its device
// peak with them on the device exceeds Machine::device_mem.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "coordinator/plan.h"
#include "coordinator/plan_rates.h"
#include "io/job/job_config.h"
#include "io/model/model_spec.h"
#include "worker/memory_model.h"

namespace gptqd {

// parallel.factorization as the estimate reads it: auto takes the faster of the two for the
// stage's replica count and route (coordinator/factorization_auto.h).
enum class FactorSetting { kReplicated, kDistributed, kAuto };

// Where a distributed factorization runs, which sets its rate: cuSOLVERMp on the stage's GPUs
// (at factor_tflops, what the plan sizes), reference ScaLAPACK on the CPU backend (at
// factor_tflops / kScalapackSlowdown), or ScaLAPACK on the host CPUs of a CUDA job without
// cuSOLVERMp (a rate the plan does not model: auto keeps the factorization replicated). Ordered
// from the most able to the least: a job takes the largest of its stages' routes
// (coordinator/quantize_job.cpp).
enum class FactorRoute { kCusolverMp, kScalapack, kScalapackBesideGpu };

// What the job asks for.
struct Workload {
  int64_t nsamples = 128, seqlen = 2048, micro_batch = 1;
  bool true_sequential = true;
  int64_t block_size = 128;
  int64_t group_size = 128;  // the smallest positive of the runs' (-1: every run has none)
  ActivationPlacement activations = ActivationPlacement::kAuto;
  int64_t runs = 1;              // sweep points; they fill the pipeline
  int64_t file_dtype_bytes = 2;  // weights as stored (bf16 for BLOOM)
  bool fast = false;             // parallel.precision fast: forward and Hessian on tensor cores
  FactorSetting factorization = FactorSetting::kReplicated;  // parallel.factorization
  FactorRoute factor_route = FactorRoute::kCusolverMp;       // of a distributed factorization
  bool concurrent = false;       // calibration.inputs original: every stage quantizes at once
  bool original_inputs = false;  // calibration.inputs original: the original output pass
  std::string sequential_passes = "auto";  // parallel.sequential_passes
  MoeConfig moe;                           // moe.* (the experts' sharding)
};

// parallel.factorization's text as a FactorSetting; InputError for anything else.
FactorSetting parse_factor_setting(const std::string& setting);

// The work of a job's runs (samples, true_sequential, block size, sweep length) and its
// parallel.precision (auto: fast, as on a GPU, which is what the plan sizes) and
// parallel.factorization (a distributed one routed to cuSOLVERMp, as on GPUs).
Workload workload_of(const JobConfig& job, int64_t file_dtype_bytes);

// The memory model's inputs for a replica holding `samples` of w's sequences (activations on
// the device; the caller decides).
MemoryWorkload memory_workload(const Workload& w, int64_t samples, int replicas, bool stage0);

// What the job runs on. Rates are sustained, per rank / per link.
struct Machine {
  int ranks_per_node = 8;
  double tflops = plan_rates::kFp32Tflops;           // fp32 rate of one rank
  double bf16_tflops = plan_rates::kBf16Tflops;      // tensor-core rate (precision fast)
  double factor_tflops = plan_rates::kFactorTflops;  // the Hessian factorization
  double link_gbs = plan_rates::kLinkGbs;            // collectives inside a node (GB/s)
  double net_gbs = plan_rates::kNetGbs;              // collectives across nodes (GB/s)
  double disk_gbs = plan_rates::kDiskGbs;            // weight reading per node (GB/s)
  uint64_t device_mem = 0;                           // bytes per rank; 0 = not checked
  uint64_t host_mem = 0;                             // bytes per node; 0 = not checked
};

struct PhaseFlops {
  double forward = 0, hessian = 0, factor = 0, sweep = 0, stats = 0;
  double total() const { return forward + hessian + factor + sweep + stats; }
};

struct RankEstimate {
  int rank = 0, stage = 0, replica = 0;
  int64_t samples = 0;
  uint64_t weights_file = 0;  // the stage's tensors as stored: what this rank reads per run
  DeviceMemory device;        // worker/memory_model.h
  bool activations_on_host = false;
  bool one_pass = false;     // true_sequential in one pass (memory_model.h one_pass_sequential)
  uint64_t device_peak = 0;  // device.peak()
  uint64_t host_peak = 0;    // host_memory()
  bool fits_device = true;
};

struct StageEstimate {
  int64_t first_block = 0, end_block = 0;
  int replicas = 1;
  int64_t samples = 0;         // of its largest replica
  bool one_pass = false;       // its true-sequential blocks run in one pass (every rank's)
  PhaseFlops flops_per_block;  // per replica
  double collective_bytes_per_block = 0;
  double compute_s_per_block = 0, collective_s_per_block = 0;
  double read_s = 0;                // reading the stage's weights once
  double seconds_per_run = 0;       // blocks x (compute + collectives)
  double activation_bytes_out = 0;  // per replica per run, to the next stage
  // Concurrent stages: the stage's part of the original model's forward (F_s), and when its
  // kept input is ready and its quantization starts (e_s).
  double original_forward_s = 0, ready_s = 0;
};

// How the replicas of every stage factorize (all stages have the same replica count, so one
// decision holds for all): the setting as written, or what auto took and from which estimates.
struct FactorDecision {
  bool distributed = false;
  bool automatic = false;  // parallel.factorization auto decided it
  int replicas = 1;        // per stage
  FactorRoute route = FactorRoute::kCusolverMp;
  double replicated_s = 0;  // auto: the job's estimated time each way; 0 when not estimated
  double distributed_s = 0;
};

struct PlanEstimate {
  FactorDecision factorization;  // the one this estimate assumes
  std::vector<RankEstimate> ranks;
  std::vector<StageEstimate> stages;
  bool concurrent = false;        // Workload::concurrent
  double run_seconds = 0;         // one run through all stages
  double job_seconds = 0;         // every run, pipelined (concurrent: every stage's runs at once)
  double original_forward_s = 0;  // concurrent: until the last stage's input is ready
  uint64_t host_per_node = 0;
  bool fits_device = true, fits_host = true;
  bool fits() const { return fits_device && fits_host; }
};

// With w.factorization auto, the estimate of the faster factorization (decide_factorization).
PlanEstimate estimate_plan(const Plan& plan, const ModelSpec& dims, const Workload& w,
                           const Machine& m);

// stages_requested > 0: plan_for_stages with it. 0 (auto): among the stage counts that work
// (feasible_stage_counts) and fit the machine's memory, the one with the smallest estimated
// job time (ties: fewer stages); when none fits, the one with the smallest device peak.
// Throws InputError when no layout works at all.
Plan choose_plan(const ModelSpec& dims, int world, int64_t stages_requested, const Workload& w,
                 const Machine& m);

// The layout of `stages` stages (make_plan) whose blocks are split the faster way by the
// estimate: by weight bytes for stages one after the other; for concurrent stages by weight
// bytes or by block count, whichever finishes the job sooner (reading the weights, which the
// weight split balances, or the blocks' compute, which the count split balances).
Plan plan_for_stages(const ModelSpec& dims, int world, int stages, const Workload& w,
                     const Machine& m);

// Bytes of one element of a safetensors / torch dtype name ("bf16", "bfloat16", "F32", ...);
// 0 when unknown.
int64_t dtype_bytes(const std::string& name);

}  // namespace gptqd
