#include "worker/memory_model.h"

#include <sys/resource.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "base/check.h"
#include "kernels/attention_scratch.h"
#include "worker/expert_shards.h"
#include "worker/families/family_forward.h"
#include "worker/sequential_pass.h"

namespace gptqd {
namespace {

double ceil_div(double a, double b) {
  return static_cast<double>(static_cast<int64_t>((a + b - 1) / b));
}

// The largest block kind's (ModelSpec::kinds; the one kind of most models).
double block_weight_floats(const ModelSpec& d) {
  double most = 0;
  for (int k = 0; k < d.n_kinds(); ++k) {
    double n = 0;
    for (const TensorSpec& t : d.kind(k).block_tensors(0)) n += static_cast<double>(t.numel());
    most = std::max(most, n);
  }
  return most;
}

int replicas_of(const MemoryWorkload& w) { return std::max(1, w.replicas); }

int64_t stage_samples(const MemoryWorkload& w) {
  return w.stage_samples > 0 ? w.stage_samples : w.samples * replicas_of(w);
}

// Whether linear l's rows are all quantized by one replica (a sharded routed expert).
bool quantized_whole(const LinearSpec& l, const MemoryWorkload& w) {
  return l.expert >= 0 && replicas_of(w) > 1 && w.moe.experts == "sharded";
}

// What each of a block's groups holds while it is captured and quantized, in bytes:
//  - hessians: one per Hessian input of the group (one in dense families; a mixture of experts
//    has one per expert), all at once. With sharded experts whose activations go to their
//    owners, a replica holds its own experts' only (the replica owning the most of the group's).
//  - outbox: the host rows a replica keeps for other replicas' experts until the capture ends
//    (ExpertOutbox): at most T_r k rows of each expert input kind (T_r per expert with
//    moe.calibration all), whatever the router does.
//  - inbox: the device buffer an owner uploads received rows through (ExpertOutbox::deliver):
//    one micro-batch of tokens of the group's widest input that routes activations.
struct GroupBytes {
  double hessians = 0, outbox = 0, inbox = 0;
};

std::vector<GroupBytes> group_bytes(const ModelSpec& d, const MemoryWorkload& w) {
  const int R = replicas_of(w);
  const double tokens = static_cast<double>(w.samples) * static_cast<double>(w.seqlen);
  const double top_k =
      w.moe.calibration == "all" ? 1.0 : static_cast<double>(d.config.experts_per_tok);
  const double experts = w.moe.calibration == "all"
                             ? 1.0
                             : static_cast<double>(std::max<int64_t>(d.config.n_experts, 1));
  const double micro =
      static_cast<double>(std::max<int64_t>(1, std::min(w.micro_batch, w.samples)));
  std::vector<GroupBytes> out;
  for (int g = 0; g < d.n_groups; ++g) {
    double hessians = 0, widths = 0, widest = 0;
    std::vector<double> owned(static_cast<size_t>(R), 0.0);
    for (int k : d.group_inputs(g)) {
      const LinearSpec& l = d.linears[d.input_members(k)[0]];
      const double c = static_cast<double>(l.in);
      if (routes_activations(d, R, stage_samples(w), w.seqlen, w.moe, k)) {
        owned[static_cast<size_t>(l.expert % R)] += 4 * c * c;
        widths += c;
        widest = std::max(widest, c);
      } else {
        hessians += 4 * c * c;
      }
    }
    GroupBytes b;
    b.hessians = hessians + *std::max_element(owned.begin(), owned.end());
    b.outbox = 4 * tokens * top_k * widths / experts;
    b.inbox = 4 * micro * static_cast<double>(w.seqlen) * widest;
    out.push_back(b);
  }
  return out;
}

uint64_t u64(double x) { return static_cast<uint64_t>(x); }

}  // namespace

std::vector<LinearDims> linear_dims(const ModelSpec& d) {
  std::vector<LinearDims> out;
  for (const LinearSpec& l : d.linears)
    out.push_back({static_cast<double>(l.out), static_cast<double>(l.in)});
  return out;
}

ActivationPlacement parse_activation_placement(const std::string& name) {
  if (name == "auto") return ActivationPlacement::kAuto;
  if (name == "device") return ActivationPlacement::kDevice;
  if (name == "host") return ActivationPlacement::kHost;
  throw Error(fmt::format("activations placement '{}': use auto, device or host", name));
}

uint64_t block_weight_bytes(const ModelSpec& d) { return u64(4 * block_weight_floats(d)); }

uint64_t resident_block_weight_bytes(const ModelSpec& d, bool fast) {
  uint64_t most = 0;
  for (int k = 0; k < d.n_kinds(); ++k) {
    const ModelSpec& kind = d.kind(k);
    double linear = 0;
    for (const LinearDims& l : linear_dims(kind)) linear += l.rows * l.cols;
    most = std::max(most, u64(4 * block_weight_floats(kind) - (fast ? 2 * linear : 0)));
  }
  return most;
}

uint64_t embedding_weight_bytes(const ModelSpec& d) {
  double n = 0;
  for (const TensorSpec& t : d.embedding) n += static_cast<double>(t.numel());
  return u64(4 * n);
}

uint64_t DeviceMemory::peak() const {
  return activations + std::max(embedding, sequential_state + block_weights + workspace +
                                               std::max(scores + hessians + bf16_scratch, gptq));
}

uint64_t sequential_state_bytes(const ModelSpec& d, const MemoryWorkload& w) {
  if (!w.true_sequential || !w.one_pass) return 0;
  int64_t floats = 0;
  for (int k = 0; k < d.n_kinds(); ++k)
    floats = std::max(floats, sequential_state_floats_per_token(d.kind(k), w.original_inputs));
  return u64(4.0 * static_cast<double>(w.samples) * static_cast<double>(w.seqlen) *
             static_cast<double>(floats));
}

namespace {

// The BlockWorkspace of the whole model (every kind's buffers, the largest of each).
uint64_t workspace_bytes(const ModelSpec& d, const MemoryWorkload& w) {
  const double seq = static_cast<double>(w.seqlen);
  const double micro =
      static_cast<double>(std::max<int64_t>(1, std::min(w.micro_batch, w.samples)));
  double per_token = 0;
  for (int64_t n : workspace_per_token(d)) per_token += static_cast<double>(n);
  // The families with rotary embeddings keep cos and sin tables [seq, head_dim / 2] beside the
  // scratch (BlockWorkspace::rope_cos/rope_sin).
  const bool rope = d.family == Family::kLlama || d.family == Family::kMoe;
  const double rope_tables = rope ? 4.0 * seq * static_cast<double>(d.head_dim) : 0.0;
  return u64(4 * micro * seq * per_token + rope_tables);
}

DeviceMemory kind_device_memory(const ModelSpec& d, const MemoryWorkload& w) {
  const double h = static_cast<double>(d.hidden);
  const double seq = static_cast<double>(w.seqlen);
  const double micro =
      static_cast<double>(std::max<int64_t>(1, std::min(w.micro_batch, w.samples)));
  DeviceMemory m;
  m.block_weights = resident_block_weight_bytes(d, w.fast);
  m.embedding = w.embedding ? embedding_weight_bytes(d) : 0;
  m.activations = w.activations_on_host
                      ? u64(4 * micro * seq * h)
                      : u64(4 * (static_cast<double>(w.samples) + micro) * seq * h);
  m.workspace = workspace_bytes(d, w);
  m.scores = static_cast<uint64_t>(attention_score_bytes(w.seqlen, d.n_head));
  double all_h = 0, max_h = 0, max_inbox = 0, gptq = 0;
  for (const GroupBytes& b : group_bytes(d, w)) {
    all_h += b.hessians;
    max_h = std::max(max_h, b.hessians + b.inbox);
    max_inbox = std::max(max_inbox, b.inbox);
  }
  for (const LinearSpec& l : d.linears) {
    const double rows = static_cast<double>(l.out), c = static_cast<double>(l.in);
    const double r = quantized_whole(l, w) ? rows : ceil_div(rows, replicas_of(w));
    const double g = w.group_size > 0 ? ceil_div(c, static_cast<double>(w.group_size)) : 1;
    const double b = std::min(c, static_cast<double>(std::max<int64_t>(1, w.block_size)));
    const double factor = 4 * r * c + 8 * g * r + 4 * c + 12 * c * c;
    const double sweep = 5 * r * c + 8 * g * r + 4 * c * c + 8 * r * b + 4 * r;
    const double rtn = 5 * r * c + 8 * g * r;
    const double out_err = 8 * r * c + 4 * c * c;
    gptq = std::max({gptq, factor, sweep, rtn, out_err});
  }
  if (w.fast) {
    double gemm = 0;
    for (const LinearDims& l : linear_dims(d)) gemm = std::max(gemm, 2 * micro * seq * l.cols);
    m.bf16_scratch = u64(gemm);
  }
  m.hessians = u64(w.true_sequential ? max_h : all_h + max_inbox);
  m.gptq = u64(gptq);
  m.sequential_state = w.activations_on_host ? 0 : sequential_state_bytes(d, w);
  return m;
}

uint64_t kind_host_memory(const ModelSpec& d, const MemoryWorkload& w) {
  const double h = static_cast<double>(d.hidden);
  double largest_h = 0, all_h = 0, largest_layer = 0, largest_out = 0, all_out = 0;
  for (const GroupBytes& b : group_bytes(d, w)) {
    largest_h = std::max(largest_h, b.hessians);
    all_h += b.hessians;
    largest_out = std::max(largest_out, b.outbox);
    all_out += b.outbox;
  }
  // A layer's results: its dequantized rows and the gathered whole (with replicas), or the whole
  // twice for a sharded expert's owner.
  for (const LinearSpec& l : d.linears) {
    const double n = static_cast<double>(l.out) * static_cast<double>(l.in);
    largest_layer =
        std::max(largest_layer, n * (quantized_whole(l, w) ? 2 : 1 + 1.0 / replicas_of(w)));
  }
  // The current block's host copy, the next one's as read and its pinned staging.
  const double weights = 3 * 4 * block_weight_floats(d);
  const double hessians = (w.true_sequential ? largest_h : all_h) + largest_h;
  const double outbox = w.true_sequential ? largest_out : all_out;
  const double results = 4 * largest_layer;
  const double one_copy = 4 * static_cast<double>(w.samples) * static_cast<double>(w.seqlen) * h;
  const double acts =
      (w.activations_on_host ? one_copy + static_cast<double>(sequential_state_bytes(d, w)) : 0) +
      (w.kept_input ? one_copy : 0);
  return u64(weights + hessians + outbox + results + acts);
}

}  // namespace

// Blocks of several kinds: each part the largest over the kinds (one workspace serves them all).
DeviceMemory device_memory(const ModelSpec& d, const MemoryWorkload& w) {
  DeviceMemory m = kind_device_memory(d.kind(0), w);
  for (int k = 1; k < d.n_kinds(); ++k) {
    const DeviceMemory o = kind_device_memory(d.kind(k), w);
    for (auto part :
         {&DeviceMemory::block_weights, &DeviceMemory::embedding, &DeviceMemory::activations,
          &DeviceMemory::workspace, &DeviceMemory::scores, &DeviceMemory::hessians,
          &DeviceMemory::gptq, &DeviceMemory::bf16_scratch, &DeviceMemory::sequential_state})
      m.*part = std::max(m.*part, o.*part);
  }
  m.workspace = workspace_bytes(d, w);
  return m;
}

uint64_t host_memory(const ModelSpec& d, const MemoryWorkload& w) {
  uint64_t most = 0;
  for (int k = 0; k < d.n_kinds(); ++k) most = std::max(most, kind_host_memory(d.kind(k), w));
  return most;
}

bool activations_on_host(const ModelSpec& d, MemoryWorkload w, ActivationPlacement where,
                         uint64_t device_bytes) {
  if (where != ActivationPlacement::kAuto) return where == ActivationPlacement::kHost;
  if (device_bytes == 0) return false;
  w.activations_on_host = false;
  return device_memory(d, w).peak() > device_bytes;
}

bool one_pass_sequential(const ModelSpec& d, MemoryWorkload w, const std::string& setting,
                         uint64_t device_budget, uint64_t host_budget) {
  GPTQD_CHECK(setting == "auto" || setting == "one" || setting == "partial",
              "parallel.sequential_passes '{}': use auto, one or partial", setting);
  if (!w.true_sequential || setting == "partial") return false;
  if (setting == "one") return true;
  w.one_pass = true;
  if (w.activations_on_host) return host_budget == 0 || host_memory(d, w) <= host_budget;
  return device_budget == 0 || device_memory(d, w).peak() <= device_budget;
}

uint64_t host_available_bytes() {
  uint64_t avail = 0;
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t kb = 0;
  std::string unit;
  while (in >> key >> kb) {
    std::getline(in, unit);
    if (key == "MemAvailable:") {
      avail = kb * 1024;
      break;
    }
  }
  for (const int which : {RLIMIT_AS, RLIMIT_DATA}) {
    struct rlimit lim {};
    if (getrlimit(which, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY &&
        (avail == 0 || lim.rlim_cur < avail))
      avail = lim.rlim_cur;
  }
  return avail;
}

}  // namespace gptqd
