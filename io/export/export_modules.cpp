#include "io/export/export_modules.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace gptqd {
namespace {

// transformers 5 names Mixtral's MoE block `mlp` (conversion_mapping.py renames
// ".block_sparse_moe." to ".mlp."), and Defuser's per-expert modules (what GPTQModel and a
// transformers load after defuser.replace_fused_blocks build) are gate_proj/up_proj/down_proj
// (defuser/modeling/unfused_moe/mixtral.py): the same experts under those names.
constexpr std::pair<const char*, const char*> kMixtralRenames[] = {{"block_sparse_moe.", "mlp."},
                                                                   {".w1", ".gate_proj"},
                                                                   {".w3", ".up_proj"},
                                                                   {".w2", ".down_proj"}};

// The module's name in transformers 5 with Defuser, or "" when it has no other name.
std::string mixtral_defused_name(const std::string& module) {
  const std::string block = kMixtralRenames[0].first;
  if (module.compare(0, block.size(), block) != 0) return "";
  std::string n = module;
  for (const auto& [from, to] : kMixtralRenames) {
    const size_t at = n.find(from);
    if (at != std::string::npos) n.replace(at, std::strlen(from), to);
  }
  return n;
}

}  // namespace

ExportModules export_modules(const ModelSpec& spec, int64_t n_blocks) {
  ExportModules m;
  // Blocks of several kinds: each group lists every kind's modules (a name once).
  auto add = [&](int group, const std::string& name) {
    if (static_cast<size_t>(group) >= m.in_block.size()) m.in_block.resize(group + 1);
    std::vector<std::string>& g = m.in_block[static_cast<size_t>(group)];
    if (std::find(g.begin(), g.end(), name) == g.end()) g.push_back(name);
  };
  for (int k = 0; k < spec.n_kinds(); ++k)
    for (const LinearSpec& l : spec.kind(k).linears) add(l.group, l.module);
  for (int k = 0; k < spec.n_kinds(); ++k)
    for (const LinearSpec& l : spec.kind(k).linears) {
      const std::string alias = mixtral_defused_name(l.module);
      if (!alias.empty()) add(l.group, alias);
    }
  // A 2-D block tensor that is no LinearSpec is a linear kept in full precision (the norms are
  // 1-D); its module is the tensor's name less ".weight".
  const std::string suffix = ".weight";
  for (int64_t b = 0; b < n_blocks; ++b) {
    for (const TensorSpec& t : spec.block(b).block_norms) {
      const bool matrix = t.shape.size() == 2;
      const bool weight = t.name.size() > suffix.size() &&
                          t.name.compare(t.name.size() - suffix.size(), suffix.size(), suffix) == 0;
      if (matrix && weight)
        m.full_precision.push_back(spec.hf_name(
            spec.block_tensor_name(b, t.name.substr(0, t.name.size() - suffix.size()))));
    }
  }
  return m;
}

}  // namespace gptqd
