#include "io/export/export_compat.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "base/log.h"

namespace gptqd {

std::vector<std::string> vllm_refusals(const QuantSettings& q, bool moe) {
  std::vector<std::string> why;
  if (q.bits != 4 && q.bits != 8)
    why.push_back(fmt::format("{}-bit (vLLM's {} take 4 or 8 bits)", q.bits,
                              moe ? "MoE kernels (Marlin MoE, MoE WNA16) and GPTQ Marlin kernels"
                                  : "GPTQ Marlin kernels"));
  if (!q.sym)
    why.push_back(fmt::format(
        "asymmetric (sym: false; vLLM's {} types uint4b8/uint8b128 have no zero points)",
        moe ? "Marlin MoE and GPTQ Marlin" : "GPTQ Marlin"));
  if (q.group_size != -1 && q.group_size != 32 && q.group_size != 64 && q.group_size != 128)
    why.push_back(fmt::format("group size {} (Marlin takes -1, 32, 64, 128)", q.group_size));
  return why;
}

std::vector<std::string> vllm_shape_notes(const ModelSpec& spec) {
  std::vector<std::string> notes;
  std::set<std::string> seen;  // a layer of several block kinds once
  for (int k = 0; k < spec.n_kinds(); ++k)
    for (const LinearSpec& l : spec.kind(k).linears) {
      if (!seen.insert(l.module).second) continue;
      std::string why;
      if (l.out % 64 != 0) why += "out % 64 != 0";
      if (l.in % 128 != 0) why += std::string(why.empty() ? "" : ", ") + "in % 128 != 0";
      if (!why.empty()) notes.push_back(fmt::format("{} {}x{}: {}", l.module, l.out, l.in, why));
    }
  return notes;
}

namespace {

// check_moe_marlin_supports_layer's shape condition, as one reason or "".
std::string marlin_moe_misfit(const QuantSettings& q, const ModelSpec& spec) {
  const ModelConfig& c = spec.config;
  if (spec.family != Family::kMoe || c.n_experts == 0) return "";
  const int64_t k_tile = std::max<int64_t>(64, q.group_size);
  std::string why;
  if (spec.hidden % 128 != 0) why = fmt::format("hidden {} % 128 != 0", spec.hidden);
  if (c.moe_ffn % k_tile != 0)
    why += fmt::format("{}intermediate {} % {} != 0", why.empty() ? "" : ", ", c.moe_ffn, k_tile);
  if (why.empty()) return "";
  return fmt::format("experts {}x{}: {}", c.moe_ffn, spec.hidden, why);
}

}  // namespace

std::string vllm_moe_refusal(const QuantSettings& q, const ModelSpec& spec, bool gptq) {
  const std::string misfit = marlin_moe_misfit(q, spec);
  if (misfit.empty() || !gptq || !q.act_order) return "";
  return fmt::format(
      "act_order with {}: Marlin's MoE kernels do not tile these experts, and vLLM's fallback, "
      "the MoE WNA16 kernels, refuses desc_act (quantize without act_order, or export "
      "--format compressed-tensors with static_groups)",
      misfit);
}

std::string vllm_moe_shape_note(const QuantSettings& q, const ModelSpec& spec) {
  return marlin_moe_misfit(q, spec);
}

void warn_vllm_unservable(const std::vector<QuantConfig>& runs, const ModelSpec& spec) {
  std::string line;
  for (const QuantConfig& q : runs) {
    const std::vector<std::string> why = vllm_refusals(
        {q.bits, q.group_size, q.sym, q.act_order, q.static_groups}, spec.family == Family::kMoe);
    if (why.empty()) continue;
    line += fmt::format("{}{}: {}", line.empty() ? "" : "; ", q.name, fmt::join(why, ", "));
  }
  const std::vector<std::string> shapes = vllm_shape_notes(spec);
  if (!line.empty()) {
    GPTQD_LOG_WARN(
        "vLLM will not serve run(s) {} (export them for GPTQModel, AutoGPTQ or transformers; "
        "see docs/export.md){}",
        line,
        shapes.empty() ? ""
                       : fmt::format("; Marlin's tiles also miss {}", shapes.size()) +
                             " layer(s): " + fmt::format("{}", fmt::join(shapes, ", ")));
  }
}

}  // namespace gptqd
