#include "worker/memory_model.h"

#include <algorithm>
#include <array>

#include "kernels/attention_scratch.h"
#include "kernels/check.h"
#include "worker/bloom_weights.h"

namespace gptqd {
namespace {

double ceil_div(double a, double b) {
  return static_cast<double>(static_cast<int64_t>((a + b - 1) / b));
}

double block_weight_floats(const BloomDims& d) {
  double n = 0;
  for (const BlockTensorSpec& t : block_tensor_specs(d)) n += static_cast<double>(t.numel());
  return n;
}

uint64_t u64(double x) { return static_cast<uint64_t>(x); }

}  // namespace

std::array<LinearDims, kNumLinears> linear_dims(const BloomDims& d) {
  std::array<LinearDims, kNumLinears> out;
  const auto shapes = linear_shapes(d);
  for (int i = 0; i < kNumLinears; ++i)
    out[i] = {static_cast<double>(shapes[i][0]), static_cast<double>(shapes[i][1])};
  return out;
}

ActivationPlacement parse_activation_placement(const std::string& name) {
  if (name == "auto") return ActivationPlacement::kAuto;
  if (name == "device") return ActivationPlacement::kDevice;
  if (name == "host") return ActivationPlacement::kHost;
  throw Error(fmt::format("activations placement '{}': use auto, device or host", name));
}

uint64_t block_weight_bytes(const BloomDims& d) { return u64(4 * block_weight_floats(d)); }

uint64_t embedding_weight_bytes(const BloomDims& d) {
  const double h = static_cast<double>(d.hidden);
  return u64(4 * (static_cast<double>(d.vocab) * h + 2 * h));
}

uint64_t DeviceMemory::peak() const {
  return activations +
         std::max(embedding, block_weights + workspace + std::max(scores + hessians, gptq));
}

DeviceMemory device_memory(const BloomDims& d, const MemoryWorkload& w) {
  const double h = static_cast<double>(d.hidden), f = static_cast<double>(d.ffn);
  const double seq = static_cast<double>(w.seqlen);
  const double micro =
      static_cast<double>(std::max<int64_t>(1, std::min(w.micro_batch, w.samples)));
  DeviceMemory m;
  m.block_weights = block_weight_bytes(d);
  m.embedding = w.embedding ? embedding_weight_bytes(d) : 0;
  m.activations = w.activations_on_host
                      ? u64(4 * micro * seq * h)
                      : u64(4 * (static_cast<double>(w.samples) + micro) * seq * h);
  m.workspace = u64(4 * micro * seq * (7 * h + f));
  m.scores = static_cast<uint64_t>(attention_score_bytes(w.seqlen, d.n_head));
  double all_h = 0, max_h = 0, gptq = 0;
  for (const LinearDims& l : linear_dims(d)) {
    const double r = ceil_div(l.rows, std::max(1, w.replicas)), c = l.cols;
    const double g = w.group_size > 0 ? ceil_div(c, static_cast<double>(w.group_size)) : 1;
    const double b = std::min(c, static_cast<double>(std::max<int64_t>(1, w.block_size)));
    const double hess = 4 * c * c;
    all_h += hess;
    max_h = std::max(max_h, hess);
    const double factor = 4 * r * c + 8 * g * r + 4 * c + 12 * c * c;
    const double sweep = 5 * r * c + 8 * g * r + 4 * c * c + 8 * r * b + 4 * r;
    const double rtn = 5 * r * c + 8 * g * r;
    const double out_err = 8 * r * c + 4 * c * c;
    gptq = std::max({gptq, factor, sweep, rtn, out_err});
  }
  m.hessians = u64(w.true_sequential ? max_h : all_h);
  m.gptq = u64(gptq);
  return m;
}

uint64_t host_memory(const BloomDims& d, const MemoryWorkload& w) {
  const double h = static_cast<double>(d.hidden);
  double largest_h = 0, all_h = 0, largest_layer = 0;
  for (const LinearDims& l : linear_dims(d)) {
    largest_h = std::max(largest_h, 4 * l.cols * l.cols);
    all_h += 4 * l.cols * l.cols;
    largest_layer = std::max(largest_layer, l.rows * l.cols);
  }
  // The current block's host copy, the next one's as read and its pinned staging.
  const double weights = 3 * 4 * block_weight_floats(d);
  const double hessians = (w.true_sequential ? largest_h : all_h) + largest_h;
  const double results = 4 * largest_layer * (1 + 1.0 / std::max(1, w.replicas));
  const double acts = w.activations_on_host
                          ? 4 * static_cast<double>(w.samples) * static_cast<double>(w.seqlen) * h
                          : 0;
  return u64(weights + hessians + results + acts);
}

bool activations_on_host(const BloomDims& d, MemoryWorkload w, ActivationPlacement where,
                         uint64_t device_bytes) {
  if (where != ActivationPlacement::kAuto) return where == ActivationPlacement::kHost;
  if (device_bytes == 0) return false;
  w.activations_on_host = false;
  return device_memory(d, w).peak() > device_bytes;
}

}  // namespace gptqd
