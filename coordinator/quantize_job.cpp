#include "coordinator/quantize_job.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

#include "base/check.h"
#include "base/log.h"
#include "coordinator/calibration_input.h"
#include "coordinator/collective.h"
#include "coordinator/execution.h"
#include "coordinator/factorization_auto.h"
#include "coordinator/factorizer_choice.h"
#include "coordinator/fingerprint.h"
#include "coordinator/plan.h"
#include "coordinator/plan_estimate.h"
#include "coordinator/precision.h"
#include "coordinator/report.h"
#include "coordinator/resume_verify.h"
#include "coordinator/stall_timeout.h"
#include "io/checkpoint/checkpoint.h"
#include "io/checkpoint/checkpoint_guard.h"
#include "io/export/export_compat.h"
#include "io/job/recorded_setting.h"
#include "io/model/hf_model.h"
#include "kernels/cuda/cuda_info.h"
#include "worker/block_quantizer.h"
#include "worker/expert_shards.h"
#include "worker/memory_model.h"
#include "worker/model_weights.h"
#include "worker/stage.h"
#include "worker/transport/liveness.h"

namespace gptqd {
namespace {

// How long a replica that failed waits for its stage's leader, which reads the same inputs and
// writes to the same file system, to report the error and end the job (milliseconds when it
// fails alike; the whole wait when the error is the replica's own).
constexpr int kReplicaQuietSeconds = 10;

std::string fingerprint_of(const JobConfig& job, const ModelConfig& cfg, const HfModel& model,
                           const std::vector<int32_t>& tokens, Precision precision,
                           const Plan& plan) {
  Fingerprint fp;
  // A checkpoint's codes come from one arithmetic: fast does not resume an exact checkpoint
  // (nor the reverse). Exact adds nothing, so checkpoints made before the setting still match.
  if (precision == Precision::kFast) fp.add(std::string("precision fast"));
  fp.add(cfg.json);
  fp.add(static_cast<int64_t>(model.bytes_of(model.spec().embedding[0].name)));
  fp.add(tokens.data(), tokens.size() * sizeof(int32_t));
  // Settings that change what a block is calibrated on; their defaults add nothing, so
  // checkpoints made before the settings still match.
  if (job.calibration.inputs != "quantized")
    fp.add(std::string("calibration.inputs ") + job.calibration.inputs);
  // quantized_in_stage: where the stages begin decides which blocks see original inputs, so a
  // checkpoint resumes only on the same split of the blocks.
  if (job.calibration.inputs == "quantized_in_stage")
    for (const StagePlan& s : plan.stage) fp.add(s.first_block);
  if (job.moe.calibration != "routed")
    fp.add(std::string("moe.calibration ") + job.moe.calibration);
  if (job.moe.min_tokens != MoeConfig{}.min_tokens)
    fp.add(std::string("moe.min_tokens")).add(static_cast<int64_t>(job.moe.min_tokens));
  for (const QuantConfig& q : job.runs) {
    fp.add(q.name).add(q.bits).add(q.group_size).add(q.sym).add(q.act_order).add(q.static_groups);
    fp.add(q.true_sequential).add(q.block_size).add(q.mse_clip);
    fp.add(&q.damp_percent, sizeof q.damp_percent);
  }
  return fp.hex();
}

// The memory model's workload of `rank`: its stage's place and its replica's share of the samples.
MemoryWorkload rank_workload(const Workload& w, const Plan& plan, int rank, int64_t micro) {
  const int stage = plan.stage_of(rank), replica = plan.replica_of(rank);
  MemoryWorkload mw = memory_workload(w, share_of(w.nsamples, replica, plan.replicas).size(),
                                      plan.replicas, stage == 0);
  mw.micro_batch = micro;
  return mw;
}

// The GPU memory a rank plans with: what is free less a margin for the CUDA context and the
// library workspaces (0 when less than the margin is free); `free_bytes` 0 is the CPU backend.
constexpr uint64_t kGpuMargin = uint64_t{1} << 30;
uint64_t gpu_budget(uint64_t free_bytes) {
  return free_bytes > kGpuMargin ? free_bytes - kGpuMargin : 0;
}

// parallel.activations resolved for this rank, and its GPU budget checked before any work: the
// memory model's peak (worker/memory_model.h, what `gptqd plan` prints) with the activations
// where they will be must fit the GPU's free memory less a margin for the CUDA context and the
// library workspaces. auto puts them on the host only when they do not fit on the device. The
// CPU backend has no budget to check and never stages (host placement is honoured as asked).
bool rank_activations_on_host(const JobConfig& job, const ModelSpec& dims, const Plan& plan,
                              int rank, int64_t micro, Backend& be) {
  const Workload w = workload_of(job, 2);
  const uint64_t free_bytes = cuda_backend_free_bytes(be);
  if (free_bytes == 0) return w.activations == ActivationPlacement::kHost;
  const uint64_t budget = gpu_budget(free_bytes);
  MemoryWorkload mw = rank_workload(w, plan, rank, micro);
  mw.activations_on_host = activations_on_host(dims, mw, w.activations, budget);
  const double peak = static_cast<double>(device_memory(dims, mw).peak()) / (1 << 30);
  const double avail = static_cast<double>(budget) / (1 << 30);
  GPTQD_INPUT_CHECK(
      peak <= avail,
      "rank {} needs {:.2f} GiB of GPU memory at its peak with the activations on the {} "
      "(`gptqd plan` shows the budget), but {:.2f} GiB are free on {} after a 1 GiB margin: "
      "use more ranks per stage (replicas){}",
      rank, peak, mw.activations_on_host ? "host" : "device", avail, be.name(),
      mw.activations_on_host ? "" : " or parallel.activations: host");
  GPTQD_LOG_INFO("activations on the {}: device peak {:.2f} GiB of {:.2f} GiB free on {}",
                 mw.activations_on_host ? "host (pinned)" : "device", peak, avail, be.name());
  return mw.activations_on_host;
}

// parallel.sequential_passes resolved for this rank (worker/memory_model.h
// one_pass_sequential), its activations' placement decided: under auto, one pass when the kept
// state fits beside the rest of the rank's peak: the GPU's free memory less the margin with the
// activations on the device, the node's available host memory shared by its `ranks_here` ranks
// otherwise (and always on the CPU backend, whose buffers are host memory). A rank that falls
// back to partial passes says why.
bool rank_one_pass(const JobConfig& job, const ModelSpec& dims, const Plan& plan, int rank,
                   int64_t micro, bool on_host, int ranks_here, Backend& be) {
  const Workload w = workload_of(job, 2);
  MemoryWorkload mw = rank_workload(w, plan, rank, micro);
  mw.activations_on_host = on_host;
  const uint64_t gpu_free = cuda_backend_free_bytes(be);
  const uint64_t host_share =
      host_available_bytes() / static_cast<uint64_t>(std::max(1, ranks_here));
  uint64_t device_budget = 0, host_budget = host_share;
  if (gpu_free > 0) {
    device_budget = std::max<uint64_t>(1, gpu_budget(gpu_free));  // 0 would read as unknown
  } else if (!on_host && host_share > 0) {
    // The CPU backend: its "device" buffers and the host working set share the node's memory.
    const uint64_t host = host_memory(dims, mw);
    device_budget = host_share > host ? host_share - host : 1;
  }
  mw.one_pass = one_pass_sequential(dims, mw, w.sequential_passes, device_budget, host_budget);
  if (w.true_sequential && !mw.one_pass && w.sequential_passes == "auto") {
    MemoryWorkload one = mw;
    one.one_pass = true;
    GPTQD_LOG_INFO(
        "rank {}: true-sequential in partial passes (parallel.sequential_passes: auto): the one "
        "pass would keep {} of group inputs, more than fits beside the rank's working set",
        rank, format_bytes(sequential_state_bytes(dims, one)));
  } else if (rank == 0 && w.true_sequential) {
    GPTQD_LOG_INFO("true-sequential blocks in {} (parallel.sequential_passes: {}){}",
                   mw.one_pass ? "one pass" : "partial passes", w.sequential_passes,
                   mw.one_pass ? fmt::format(": rank 0 keeps {} of group inputs",
                                             format_bytes(sequential_state_bytes(dims, mw)))
                               : "");
  }
  return mw.one_pass;
}

CkptLayout layout_of(const JobConfig& job, const ModelConfig& cfg, const ModelSpec& dims) {
  CkptLayout l;
  l.n_blocks = dims.n_layer;
  l.family = family_name(dims.family);
  // Blocks of several kinds: every kind's layers, a name shared by kinds (the attention's) once.
  for (int k = 0; k < dims.n_kinds(); ++k) {
    std::vector<int>& kind = l.kind_layers.emplace_back();
    for (const LinearSpec& ls : dims.kind(k).linears) {
      const CkptLayerShape shape{ls.module, ls.out, ls.in, ls.group, ls.bias};
      int li = layer_index(l, ls.module);
      if (li < 0) {
        li = static_cast<int>(l.layers.size());
        l.layers.push_back(shape);
      }
      const CkptLayerShape& known = l.layers[static_cast<size_t>(li)];
      GPTQD_CHECK(known.rows == shape.rows && known.cols == shape.cols &&
                      known.group == shape.group && known.bias == shape.bias,
                  "layer {} differs between block kinds", ls.module);
      kind.push_back(li);
    }
  }
  if (dims.mixed()) {
    l.block_kind = dims.block_kind;
  } else {
    l.kind_layers.clear();
  }
  for (const QuantConfig& q : job.runs) {
    CkptRunSpec s;
    s.name = q.name;
    s.bits = q.bits;
    s.group_size = q.group_size;
    s.sym = q.sym;
    s.act_order = q.act_order;
    s.static_groups = q.static_groups;
    s.true_sequential = q.true_sequential;
    s.damp_percent = q.damp_percent;
    s.block_size = q.block_size;
    s.mse_clip = q.mse_clip;
    l.runs.push_back(s);
  }
  l.model_config_json = cfg.json;
  l.job_config_yaml = job.resolved_yaml();
  return l;
}

// The job's work as the layout estimate sees it (coordinator/plan_estimate.h). The backend is
// not made yet when the layout is chosen, so a distributed factorization is assumed to run where
// it would with the job's parallel.device on this build: the same on every rank (run_quantize
// decides the factorization again once the backend is known).
Workload workload_of(const JobConfig& job, const ModelSpec& dims, const HfModel& model) {
  const uint64_t elems = static_cast<uint64_t>(dims.vocab) * static_cast<uint64_t>(dims.hidden);
  Workload w =
      workload_of(job, static_cast<int64_t>(model.bytes_of(dims.embedding[0].name) / elems));
#ifdef GPTQD_WITH_CUDA
  const bool may_use_gpus = job.parallel.device != "cpu";
#else
  const bool may_use_gpus = false;
#endif
  w.factor_route = may_use_gpus ? FactorRoute::kCusolverMp : FactorRoute::kScalapack;
  return w;
}

// parallel.factorization for this job on its backend: explicit settings as written; auto by
// the plan's estimate of both (coordinator/factorization_auto.h) with the precision the backend
// runs and the route the stage's replicas agree on (collective over stage_comm).
FactorDecision decide_job_factorization(const JobConfig& job, const ModelSpec& dims,
                                        const Plan& plan, Workload work, const Machine& machine,
                                        const FactorRouteInfo& route, Backend& be) {
  work.fast = be.precision() == Precision::kFast;
  work.factor_route = route.route;
  return decide_factorization(plan, dims, work, machine);
}

// Debug: how much of each model file this rank has touched, from the resident size of its
// mappings in /proc/self/smaps (Linux; silent elsewhere). A rank reads only the byte ranges of
// its own blocks (and the embedding on stage 0), so files holding other stages' blocks stay
// at most a few pages resident (headers, and the kernel's fault-around of neighbouring pages).
void log_model_residency(const std::string& model_dir) {
  if (!spdlog::should_log(spdlog::level::debug)) return;
  std::error_code ec;
  const std::string dir = std::filesystem::weakly_canonical(model_dir, ec).string() + "/";
  std::ifstream in("/proc/self/smaps");
  std::map<std::string, uint64_t> kb;
  std::string line, path;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string first;
    fields >> first;
    if (first == "Rss:") {
      uint64_t v = 0;
      fields >> v;
      if (!path.empty()) kb[path] += v;
    } else if (first.find('-') != std::string::npos && first.back() != ':') {
      std::string perms, offset, dev, inode;
      path.clear();
      fields >> perms >> offset >> dev >> inode >> path;
      if (path.compare(0, dir.size(), dir) != 0) path.clear();
    }
  }
  for (const auto& [file, v] : kb) GPTQD_LOG_DEBUG("model file {}: {} kB resident", file, v);
}

// The rank's host memory (the memory model's host working set, plus its backend buffers on
// the CPU backend) times the ranks on this node must fit what the machine has available.
// Collective: rank 0 logs the largest backend-buffer peak any rank measured (Backend::
// memory_stats: what the device held, on the CPU backend what it would hold), beside the
// estimate logged at the start.
void log_measured_peaks(MPI_Comm comm, const MemoryStats& mine) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  const long long peak = mine.device_peak;
  std::vector<long long> all(rank == 0 ? size : 0);
  MPI_Gather(&peak, 1, MPI_LONG_LONG, all.data(), 1, MPI_LONG_LONG, 0, comm);
  if (rank != 0) return;
  const auto most = std::max_element(all.begin(), all.end());
  GPTQD_LOG_INFO("measured peak of backend buffers: {} (rank {}); the least of the ranks {}",
                 format_bytes(static_cast<uint64_t>(*most)), most - all.begin(),
                 format_bytes(static_cast<uint64_t>(*std::min_element(all.begin(), all.end()))));
}

void check_host_memory(const RankEstimate& r, bool on_gpu, int ranks_here) {
  const uint64_t avail = host_available_bytes();
  if (avail == 0) return;  // unknown: not Linux
  const double need =
      (static_cast<double>(r.host_peak) + (on_gpu ? 0.0 : static_cast<double>(r.device_peak))) *
      ranks_here;
  const double gib = 1 << 30;
  GPTQD_INPUT_CHECK(need <= static_cast<double>(avail),
                    "the job needs {:.2f} GiB of host memory on this node ({} rank(s) of {:.2f} "
                    "GiB at their peak, `gptqd plan` details it) but {:.2f} GiB are available: "
                    "lower calibration.nsamples or seqlen, or use more nodes",
                    need / gib, ranks_here, need / ranks_here / gib,
                    static_cast<double>(avail) / gib);
}

// Everything the job reads, for check_output_not_input: the model directory (nothing is
// written inside it) and its files, the job file and the texts.
std::vector<NamedInput> job_inputs(const std::string& config_path, const JobConfig& job) {
  std::vector<NamedInput> in = model_directory_inputs(job.model_path);
  in.push_back({"job file", config_path});
  if (!job.calibration.text.empty()) in.push_back({"calibration.text", job.calibration.text});
  if (!job.calibration.tokens.empty()) in.push_back({"calibration.tokens", job.calibration.tokens});
  if (!job.eval.text.empty()) in.push_back({"eval.text", job.eval.text});
  return in;
}

// Throws InputError naming output.checkpoint when `need` bytes do not fit on its file system,
// counting as free the `reclaimed` bytes of the old file that --restart replaces.
void check_free_space(const std::string& path, uint64_t need, const char* what,
                      uint64_t reclaimed = 0) {
  const uint64_t free_now = free_bytes_for(path);
  const uint64_t free = free_now > UINT64_MAX - reclaimed ? UINT64_MAX : free_now + reclaimed;
  GPTQD_INPUT_CHECK(free >= need,
                    "output.checkpoint {}: the checkpoint needs {}{}, the file system holding it "
                    "has {} free",
                    path, format_bytes(need), what, format_bytes(free));
}

void check_job_result(const JobConfig& job, const FileIdentity& written,
                      const std::vector<std::vector<uint8_t>>& done) {
  check_still_same_file(job.checkpoint, written);
  for (size_t r = 0; r < done.size(); ++r)
    for (size_t b = 0; b < done[r].size(); ++b)
      GPTQD_INPUT_CHECK(done[r][b] != 0,
                        "checkpoint {}: run {} block {} is not marked complete at the end of the "
                        "job; rerun to resume",
                        job.checkpoint, job.runs[r].name, b);
}

}  // namespace

int run_quantize(const QuantizeOptions& opt, MPI_Comm comm) {
  int rank = 0, world = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &world);

  // 1. Every rank validates the job and the model (cheap, same message everywhere) and
  //    computes the same plan (the node size that the automatic layout uses is agreed first).
  int local = local_rank_count(comm), ranks_per_node = 1;
  allreduce_polled(&local, &ranks_per_node, 1, MPI_INT, MPI_MAX, comm);
  JobConfig job;
  std::unique_ptr<HfModel> model;
  ModelSpec dims;
  Plan plan;
  PlanEstimate estimate;
  Workload work;
  Machine machine;
  CheckpointLock lock;  // rank 0's, for the whole job
  if (!collective_try(comm, [&] {
        job = load_job_config(opt.config_path);
        model = std::make_unique<HfModel>(HfModel::open(job.model_path));
        dims = model->spec();
        dims.check_seqlen(job.calibration.seqlen, "calibration.seqlen");
        validate_model_tensors(*model, dims);
        check_output_not_input(job.checkpoint, job_inputs(opt.config_path, job));
        if (!job.calibration.text.empty())
          check_text_file(job.calibration.text, "calibration.text");
        machine.ranks_per_node = ranks_per_node;
        work = workload_of(job, dims, *model);
        plan = choose_plan(dims, world, job.parallel.stages, work, machine);
        estimate = estimate_plan(plan, dims, work, machine);
        if (rank == 0) lock = CheckpointLock::acquire(job.checkpoint);
      })) {
    return 1;
  }
  if (rank == 0) {
    GPTQD_LOG_INFO("job {}: model {} ({} {} blocks, hidden {}, {} heads), {} run(s)",
                   opt.config_path, job.model_path, dims.n_layer, dims.config.model_type,
                   dims.hidden, dims.n_head, job.runs.size());
    // One log line per YAML line: every line carries the rank, and the logger prints a
    // message on one line (base/log.h).
    GPTQD_LOG_INFO("resolved config:");
    std::istringstream yaml(job.resolved_yaml());
    for (std::string line; std::getline(yaml, line);) GPTQD_LOG_INFO("  {}", line);
    warn_vllm_unservable(job.runs, dims);
    GPTQD_LOG_INFO("plan ({}): {}",
                   job.parallel.stages > 0 ? "parallel.stages" : "auto, the fastest estimate",
                   plan.describe());
    uint64_t device = 0, host = 0;
    for (const RankEstimate& r : estimate.ranks) {
      device = std::max(device, r.device_peak);
      host = std::max(host, r.host_peak);
    }
    GPTQD_LOG_INFO(
        "estimated peak memory per rank: {} of backend buffers + {} of host working memory "
        "(`gptqd plan CONFIG --ranks {}` details it)",
        format_bytes(device), format_bytes(host), world);
  }

  // 2. The backend, and every device and host memory bound, before any work.
  std::unique_ptr<Execution> exec;
  if (!collective_try(comm, [&] {
        exec = std::make_unique<Execution>(job.parallel.device, threads_per_rank(opt.threads, comm),
                                           comm, job.parallel.transport);
      })) {
    return 1;
  }
  Backend& be = exec->backend();

  // The liveness rule from here to the job's end (worker/transport/liveness.h): a rank that
  // makes no progress for the timeout ends the job, named, instead of leaving the others
  // waiting forever. Every way out below passes liveness.finish() (collective), or unwinds
  // towards MPI_Abort.
  const StallTimeout stall = stall_timeout_of(job, estimate, exec->on_gpu());
  Liveness liveness(comm, stall.seconds, stall.rule);
  LivenessScope watching(&liveness);
  auto failed = [&] {
    liveness.finish();
    return 1;
  };
  if (rank == 0) GPTQD_LOG_INFO("liveness: {}", stall.rule);
  if (rank == 0) {
    GPTQD_LOG_INFO("backend {} on rank 0, transport between stages: {} (parallel.transport: {})",
                   be.name(), exec->transport_name(), job.parallel.transport);
    log_backend_libraries(be);
  }
  be.set_precision(resolve_precision(job.parallel.precision, exec->on_gpu()));
  if (rank == 0)
    GPTQD_LOG_INFO("precision {} for the forward GEMMs and the Hessian (parallel.precision: {})",
                   precision_name(be.precision()), job.parallel.precision);
  if (rank == 0 && job.calibration.stages_at_once())
    GPTQD_LOG_INFO(
        "calibration.inputs {}: {}; {}", job.calibration.inputs,
        job.calibration.original_within_stage()
            ? "every block is calibrated on the unquantized model's inputs, and its original "
              "output (not its quantized one) feeds the next block"
            : "each stage's first block is calibrated on the unquantized model's input, the "
              "others on their stage's quantized blocks (the checkpoint resumes only on the same "
              "stage split)",
        plan.stages > 1 ? "the stages quantize at the same time once the original model's "
                          "forward has crossed them"
                        : "one stage");
  constexpr int64_t kMicroBatch = 1;
  bool on_host = false, one_pass = false;
  if (!collective_try(comm, [&] {
        on_host = rank_activations_on_host(job, dims, plan, rank, kMicroBatch, be);
        one_pass = rank_one_pass(job, dims, plan, rank, kMicroBatch, on_host, local, be);
        for (RankEstimate r : estimate.ranks) {
          if (r.rank != rank) continue;
          if (r.one_pass != one_pass) {  // the peaks with the rank's own choice
            MemoryWorkload mw = rank_workload(work, plan, rank, kMicroBatch);
            mw.activations_on_host = r.activations_on_host;
            mw.one_pass = one_pass;
            r.device_peak = device_memory(dims, mw).peak();
            r.host_peak = host_memory(dims, mw);
          }
          check_host_memory(r, exec->on_gpu(), local);
        }
      })) {
    return failed();
  }

  // 3. Rank 0 draws the calibration windows; everyone gets them (they enter the fingerprint).
  std::vector<int32_t> tokens;
  report_progress(rank == 0 ? "drawing the calibration windows"
                            : "waiting for rank 0's calibration windows");
  if (!collective_try(comm, [&] {
        if (rank == 0) {
          tokens = load_calibration_tokens(job);
          check_token_ids(tokens, dims.vocab, job);
        }
      })) {
    return failed();
  }
  broadcast(comm, 0, &tokens);

  // 4. How the replicas of a stage factorize: decided before the checkpoint, whose resolved
  //    config records it (auto resolved), so a resume can do the same.
  const int stage = plan.stage_of(rank);
  const int replica = plan.replica_of(rank);
  MPI_Comm stage_comm;
  MPI_Comm_split(comm, stage, replica, &stage_comm);
  // A failure every rank agrees on (collective_try) from here on also frees the stage's comm.
  auto failed_with_stage = [&] {
    MPI_Comm_free(&stage_comm);
    return failed();
  };
  const FactorSetting factor_setting = parse_factor_setting(job.parallel.factorization);
  // An explicit replicated job never asks where a distributed one would run (no library loaded).
  const FactorRouteInfo route = factor_setting == FactorSetting::kReplicated
                                    ? FactorRouteInfo{}
                                    : factor_route_of(stage_comm, be);
  // auto decides once for the whole job (the resolved config every rank writes must agree): on
  // the route of the least able stage, so a stage without cuSOLVERMp keeps every stage replicated.
  FactorRouteInfo job_route = route;
  if (factor_setting == FactorSetting::kAuto) {
    int r = static_cast<int>(route.route);
    MPI_Allreduce(MPI_IN_PLACE, &r, 1, MPI_INT, MPI_MAX, comm);
    job_route.route = static_cast<FactorRoute>(r);
  }
  const FactorDecision factor =
      decide_job_factorization(job, dims, plan, work, machine, job_route, be);
  // Which factorization and why, every job: auto with both estimates, an explicit one as set.
  if (rank == 0) GPTQD_LOG_INFO("{}", describe_factor_decision(factor));
  JobConfig recorded = job;
  recorded.parallel.factorization = factor.distributed ? "distributed" : "replicated";

  // 5. The checkpoint: resume when it exists and matches, else create it collectively.
  report_progress("opening the checkpoint");
  CkptLayout layout = layout_of(recorded, model->config(), dims);
  layout.fingerprint = fingerprint_of(job, model->config(), *model, tokens, be.precision(), plan);
  bool exists = false;
  if (rank == 0) exists = std::filesystem::exists(job.checkpoint);
  broadcast(comm, 0, &exists);
  // The data must fit where it goes (a full disk otherwise shows mid-job as an HDF5 error
  // chain); a resume is checked below, once the blocks still to write are known.
  if (!collective_try(comm, [&] {
        if (rank != 0 || (exists && !opt.restart)) return;
        // --restart replaces the old file: the blocks it holds on disk come back.
        struct stat st {};
        const uint64_t old = exists && ::stat(job.checkpoint.c_str(), &st) == 0
                                 ? static_cast<uint64_t>(st.st_blocks) * 512
                                 : 0;
        check_free_space(job.checkpoint, checkpoint_data_bytes(layout), "", old);
      })) {
    return failed_with_stage();
  }
  std::unique_ptr<Checkpoint> ckpt;
  if (!collective_try(comm, [&] {
        // HDF5's collective metadata calls wait inside MPI (worker/transport/liveness.h).
        const BlockingSection busy("the checkpoint's collective open or create (HDF5)");
        if (exists && !opt.restart) {
          ckpt =
              std::make_unique<Checkpoint>(Checkpoint::open_resume(job.checkpoint, layout, comm));
        } else {
          if (rank == 0) {
            const auto parent = std::filesystem::path(job.checkpoint).parent_path();
            if (!parent.empty()) std::filesystem::create_directories(parent);
          }
          yielding_barrier(comm);
          ckpt = std::make_unique<Checkpoint>(Checkpoint::create(job.checkpoint, layout, comm));
        }
      })) {
    return failed_with_stage();
  }
  if (exists && !opt.restart) {
    report_progress("reading back the checkpoint's complete blocks");
    if (!collective_try(comm, [&] {
          verify_resumed_blocks(*ckpt, comm);
          if (rank != 0) return;
          std::vector<std::vector<uint8_t>> done;
          for (const auto& r : ckpt->layout().runs) done.push_back(ckpt->completion(r.name));
          check_free_space(job.checkpoint, checkpoint_data_bytes(ckpt->layout(), &done),
                           " for the blocks still to write");
        })) {
      return failed_with_stage();
    }
  }
  if (rank == 0 && exists && !opt.restart && !ckpt->has_weights_digests()) {
    GPTQD_LOG_WARN(
        "checkpoint {} has no weights digests (made by a gptqd before them): the model's weights "
        "are not checked against those its complete blocks were quantized from",
        job.checkpoint);
  }
  // A resume under auto factorizes as the checkpoint's complete blocks were (replicated and
  // distributed differ in the last bits of U, hence in some codes: docs/distributed-
  // factorization.md); every rank reads the same file, so every rank takes the same value.
  bool distributed = factor.distributed;
  if (exists && !opt.restart && factor.automatic) {
    // A config without the key was written before parallel.factorization existed: replicated.
    std::string ran = recorded_setting(ckpt->layout().job_config_yaml, "parallel", "factorization");
    if (ran.empty()) ran = "replicated";
    if ((ran == "replicated" || ran == "distributed") && (ran == "distributed") != distributed) {
      distributed = ran == "distributed";
      if (rank == 0)
        GPTQD_LOG_INFO(
            "factorization {}, as the checkpoint's earlier blocks were made (its resolved config "
            "records it; auto would take {} for this layout)",
            ran, factor.distributed ? "distributed" : "replicated");
    }
  }
  FileIdentity written;  // rank 0: the file this job writes, checked again at the end
  if (rank == 0) written = file_identity(job.checkpoint);
  if (rank == 0) {
    GPTQD_LOG_INFO("checkpoint {} ({})", job.checkpoint,
                   exists && !opt.restart ? "resuming" : "new");
  }

  // 6. This rank's stage.
  std::unique_ptr<ReplicaGroup> group;
  if (plan.replicas > 1) group = make_mpi_replica_group(stage_comm);
  FactorizerChoice factorizer = choose_factorizer(distributed, route, stage_comm, be);
  if (rank == 0 && !factorizer.what.empty()) GPTQD_LOG_INFO("{}", factorizer.what);
  if (rank == 0 && dims.config.n_experts > 0 && plan.replicas > 1) {
    if (job.moe.experts == "sharded")
      GPTQD_LOG_INFO(
          "routed experts sharded over each stage's {} replicas (moe.experts): expert e's "
          "Hessians are summed, factorized and quantized on replica e mod {} alone; calibration "
          "to the owners (moe.exchange {}): {}",
          plan.replicas, plan.replicas, job.moe.exchange,
          describe_expert_exchange(dims, plan.replicas, job.calibration.nsamples,
                                   job.calibration.seqlen, job.moe));
    else
      GPTQD_LOG_INFO(
          "routed experts replicated (moe.experts): every replica holds every expert's Hessians "
          "and quantizes a slice of its rows");
  }
  StageInputs in;
  in.job = &job;
  in.model = model.get();
  in.dims = dims;
  in.role.stage = stage;
  in.role.stages = plan.stages;
  in.role.replica = replica;
  in.role.replicas = plan.replicas;
  in.role.first_block = plan.stage[stage].first_block;
  in.role.end_block = plan.stage[stage].end_block;
  in.role.prev_rank = stage > 0 ? plan.rank_of(stage - 1, replica) : -1;
  in.role.next_rank = stage + 1 < plan.stages ? plan.rank_of(stage + 1, replica) : -1;
  in.group = group.get();
  in.factorizer = factorizer.factorizer.get();
  in.shard_experts = job.moe.experts == "sharded";
  in.calib_tokens = &tokens;
  in.micro_batch = kMicroBatch;
  in.activations_on_host = on_host;
  in.sequential = one_pass ? SequentialPasses::kOne : SequentialPasses::kPartial;
  std::vector<LayerReport> mine;
  try {
    mine = run_stage(be, exec->transport(), *ckpt, in);
  } catch (const std::exception&) {
    // A checkpoint this job created holds nothing to resume until a block is complete: a job
    // that fails before that (NaN weights in its first block, a full disk) leaves none behind
    // rather than an empty file. The failing rank removes it (race-free with any rank's mark,
    // Checkpoint::discard_if_nothing_complete) and its error then ends the job.
    if (!(exists && !opt.restart) && ckpt->discard_if_nothing_complete())
      GPTQD_LOG_INFO("checkpoint {} removed: the job failed before any block was complete",
                     job.checkpoint);
    // The replicas of a stage read the same inputs (the weights of a block) and write to the
    // same file system, so they mostly fail alike (NaN weights, a full disk): the leader's line
    // is the job's one error line. Another replica gives it time to report and end the job,
    // then reports itself (an error of its own, the leader waiting for it in a collective).
    if (replica != 0) std::this_thread::sleep_for(std::chrono::seconds(kReplicaQuietSeconds));
    throw;
  }
  set_progress_context("");
  report_progress(plan.stages > 1 ? "its stage is done; waiting for the later stages"
                                  : "its stage is done; waiting for the other replicas");

  log_model_residency(job.model_path);

  // 7. Report and close (collective). Earlier stages finish first: they wait here asleep.
  yielding_barrier(comm);
  log_measured_peaks(comm, be.memory_stats());
  const std::vector<LayerReport> all = gather_reports(comm, 0, mine);
  liveness.finish();
  // A job whose checkpoint was removed or replaced meanwhile (say by hand, or by a job on a
  // file system without flock) or is missing a block never reports success.
  std::vector<std::vector<uint8_t>> done;
  if (rank == 0)
    for (const QuantConfig& q : job.runs) done.push_back(ckpt->completion(q.name));
  {
    const BlockingSection busy("the checkpoint's collective close (HDF5)");
    ckpt->close();
  }
  factorizer.factorizer.reset();
  group.reset();
  MPI_Comm_free(&stage_comm);
  if (!collective_try(comm, [&] {
        if (rank == 0) check_job_result(job, written, done);
      })) {
    return 1;
  }
  if (rank == 0 && opt.print_report) {
    fmt::print("{}", format_report(job, dims, all));
    fmt::print("checkpoint: {}\n", job.checkpoint);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace gptqd
