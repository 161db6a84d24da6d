#include "io/export/export_compat.h"

#include <fmt/format.h>

#include "base/log.h"

namespace gptqd {

std::vector<std::string> vllm_refusals(const QuantSettings& q) {
  std::vector<std::string> why;
  if (q.bits != 4 && q.bits != 8)
    why.push_back(fmt::format("{}-bit (vLLM's GPTQ Marlin kernels take 4 or 8 bits)", q.bits));
  if (!q.sym)
    why.push_back(
        "asymmetric (sym: false; vLLM's GPTQ Marlin types uint4b8/uint8b128 have no zero points)");
  if (q.group_size != -1 && q.group_size != 32 && q.group_size != 64 && q.group_size != 128)
    why.push_back(fmt::format("group size {} (Marlin takes -1, 32, 64, 128)", q.group_size));
  return why;
}

std::vector<std::string> vllm_shape_notes(const ModelSpec& spec) {
  std::vector<std::string> notes;
  for (const LinearSpec& l : spec.linears) {
    std::string why;
    if (l.out % 64 != 0) why += "out % 64 != 0";
    if (l.in % 128 != 0) why += std::string(why.empty() ? "" : ", ") + "in % 128 != 0";
    if (!why.empty()) notes.push_back(fmt::format("{} {}x{}: {}", l.module, l.out, l.in, why));
  }
  return notes;
}

void warn_vllm_unservable(const std::vector<QuantConfig>& runs, const ModelSpec& spec) {
  std::string line;
  for (const QuantConfig& q : runs) {
    const std::vector<std::string> why =
        vllm_refusals({q.bits, q.group_size, q.sym, q.act_order, q.static_groups});
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
