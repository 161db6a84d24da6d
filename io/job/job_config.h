// The YAML job file (DESIGN.md §1, docs/config-reference.md): parsed, validated and
// expanded into one QuantConfig per run before any expensive work starts.
//
// Every problem with the file is a gptqd::InputError whose what() is one line:
//   "<file>:<line>:<col>: <key path>: <what>"   e.g.
//   "configs/x.yaml:7:9: quant.bits: 5 is not one of 2, 3, 4, 8"
// Lines and columns are 1-based. Defaults live here, in the member initialisers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gptqd {

// The settings of one GPTQ run (DESIGN.md §4).
struct QuantConfig {
  int bits = 4;                 // 2 | 3 | 4 | 8
  int64_t group_size = 128;     // -1 = one group per row, else > 0
  bool sym = false;             // symmetric quantizer (zero fixed at (maxq + 1) / 2)
  bool act_order = false;       // process columns by descending diag(H)
  bool static_groups = false;   // group parameters from the original W (needs group_size > 0)
  bool true_sequential = true;  // qkv -> dense -> h_to_4h -> 4h_to_h, each on updated inputs
  double damp_percent = 0.01;   // > 0 and < 1: lambda = damp_percent * mean(diag H)
  int64_t block_size = 128;     // > 0: columns per lazy-batch block
  bool mse_clip = false;        // grid-search the quantizer range
  std::string name;             // run name (JobConfig::runs only; empty in JobConfig::quant)
};

struct CalibrationConfig {
  std::string text;    // a text file tokenized with the model's tokenizer, or
  std::string tokens;  // pre-tokenized safetensors; exactly one of the two is set
  int64_t nsamples = 128;
  int64_t seqlen = 2048;
  uint64_t seed = 0;
  // Which inputs each block is calibrated on: quantized (the outputs of the already-quantized
  // blocks before it: GPTQ's order, the default) or original (the unquantized model's: every
  // block's input is the original model's, so no block depends on another's quantization) or
  // quantized_in_stage (each stage's first block on the original model's input, the others on
  // their stage's quantized blocks: the stages still work at the same time). stages_at_once().
  std::string inputs = "quantized";
  // The stages of a run need not wait for each other (original, quantized_in_stage).
  bool stages_at_once() const { return inputs != "quantized"; }
  // A block's output feeds the next block of its stage through its original weights (original)
  // or its quantized ones (quantized, quantized_in_stage).
  bool original_within_stage() const { return inputs == "original"; }
};

struct ParallelConfig {
  int64_t stages = 0;           // pipeline stages; 0 = auto (written "auto" in YAML)
  std::string device = "auto";  // auto | cuda | cpu
  // Where each rank keeps its calibration activations: auto (on the device when the memory
  // model says they fit, worker/memory_model.h) | device | host (pinned host memory, one
  // micro-batch at a time on the device).
  std::string activations = "auto";
  // How a true-sequential block is traversed: auto (in one pass when the memory model says the
  // state it keeps for every sample fits, worker/memory_model.h) | one (once, keeping each group's
  // input state for all the rank's samples: worker/sequential_pass.h) | partial (one partial
  // forward per group from the block's input: least memory). The codes are the same.
  std::string sequential_passes = "auto";
  // Arithmetic of the forward GEMMs and the Hessian X^T X: exact (fp32 operands) | fast (bf16
  // operands, fp32 accumulation: tensor cores on the GPU) | auto (fast on cuda, exact on cpu).
  std::string precision = "auto";
  // How a stage's replicas factorize the shared Hessian: auto (the faster by the plan's
  // estimate, coordinator/factorization_auto.h) | replicated (every replica alone) |
  // distributed (one factorization across the stage's replicas: ScaLAPACK / cuSOLVERMp).
  std::string factorization = "auto";
  // How activations cross stage boundaries: auto (NCCL on cuda, MPI on cpu) | nccl | mpi
  // (several ranks sharing one GPU need mpi: NCCL refuses two ranks on one device).
  std::string transport = "auto";
  // Seconds a rank may go without progress before the job ends naming it (worker/transport/
  // liveness.h); 0 = auto (written "auto" in YAML): chosen from the plan's per-block estimate
  // by the coordinator (coordinator/stall_timeout.h). Else >= kMinStallTimeout.
  double stall_timeout = 0;
};

// parallel.stall_timeout's bounds when given as a number of seconds.
constexpr double kMinStallTimeout = 1;
constexpr double kMaxStallTimeout = 30 * 24 * 3600;  // 30 days: beyond it is "never"

// Mixtures of experts (ignored by dense models; docs/config-reference.md).
struct MoeConfig {
  // Which tokens an expert's Hessian sees: routed (those the router sends it) or all (every
  // token reaches every expert's Hessian, the block output still the routed mix: what
  // llm-compressor's calibrate_all_experts does).
  std::string calibration = "routed";
  // An expert whose Hessian saw fewer calibration tokens (over all replicas) is quantized with
  // RTN instead of GPTQ, logged per expert and counted: GPTQ on a Hessian of a handful of tokens
  // fits them and little else, and on none it would zero the expert (dead inputs). >= 1.
  int64_t min_tokens = 16;
  // How a stage's replicas share the routed experts: sharded (each expert owned by one replica,
  // which alone holds its summed Hessian and quantizes it whole: worker/block_quantizer.h
  // ReplicaContext::shard_experts) or replicated (every replica quantizes a slice of every
  // expert's rows, as for dense layers). A layout choice like the replica count: not part of
  // the checkpoint's fingerprint.
  std::string experts = "sharded";
  // With sharded experts, how an expert's calibration reaches its owner: activations (each
  // replica sends the rows it routed to the expert; only the owner holds its Hessian, from the
  // start) | hessians (every replica accumulates a partial Hessian of every expert, summed at
  // the owner) | auto (whichever moves fewer bytes: activations when an expert's expected rows
  // per replica are fewer than its input's width, as coordinator/plan_moe.h models it).
  std::string exchange = "auto";
};

struct EvalConfig {
  std::string text;  // empty = none configured
  int64_t seqlen = 2048;
};

// One `sweep:` entry: a quant key and its values in file order, each written as
// resolved_yaml() writes it (e.g. "4", "-1", "true", "0.01").
struct SweepAxis {
  std::string key;
  std::vector<std::string> values;
};

struct JobConfig {
  std::string source;  // where it was read from (a path, or the name given to parse)
  std::string model_path;
  CalibrationConfig calibration;
  QuantConfig quant;              // the base settings, before the sweep
  std::vector<SweepAxis> sweep;   // empty = no sweep
  std::vector<QuantConfig> runs;  // expanded: one per sweep point ({quant} without sweep), named
  ParallelConfig parallel;
  std::string checkpoint;  // output.checkpoint
  EvalConfig eval;
  MoeConfig moe;

  // A YAML text with every section and key (defaults filled in; keys without a default
  // only when set), the sweep as written, and the run names in a comment. Meant for the
  // checkpoint and the log. parse_job_config(resolved_yaml(), any) == *this.
  std::string resolved_yaml() const;
};

// Parses and validates a job file's text. source_name names the file in errors.
// Guarantees on return: every value in range, runs non-empty with unique names, in
// sweep order (the first sweep key varies slowest). Throws InputError otherwise.
JobConfig parse_job_config(const std::string& yaml_text, const std::string& source_name);

// Reads the file at path and parses it; InputError if it cannot be read.
JobConfig load_job_config(const std::string& path);

// The run's name: w{bits}g{group_size}, then -sym, -act, -static, -mse, -seq0 (true_sequential
// off), -damp{damp_percent} and -bs{block_size} for the settings that differ from the
// defaults, in that order. Distinct settings give distinct names: "w4g128", "w3g-1-sym-act",
// "w4g128-damp0.1". Ignores q.name.
std::string run_name(const QuantConfig& q);

// Equality of settings. JobConfig's ignores `source`: the same job read from another
// place (e.g. back from a checkpoint) is the same job.
bool operator==(const QuantConfig& a, const QuantConfig& b);
bool operator==(const CalibrationConfig& a, const CalibrationConfig& b);
bool operator==(const ParallelConfig& a, const ParallelConfig& b);
bool operator==(const EvalConfig& a, const EvalConfig& b);
bool operator==(const MoeConfig& a, const MoeConfig& b);
bool operator==(const SweepAxis& a, const SweepAxis& b);
bool operator==(const JobConfig& a, const JobConfig& b);
inline bool operator!=(const JobConfig& a, const JobConfig& b) { return !(a == b); }

}  // namespace gptqd
