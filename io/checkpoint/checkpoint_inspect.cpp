#include "io/checkpoint/checkpoint_inspect.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "base/check.h"
#include "io/checkpoint/checkpoint.h"

namespace gptqd {

namespace {

// "<label> <value>" for the first of `keys` present in a config.json (BLOOM configs use legacy
// key names), or empty.
std::string config_item(const nlohmann::json& cfg, const char* label,
                        std::initializer_list<const char*> keys) {
  for (const char* k : keys) {
    auto it = cfg.find(k);
    if (it == cfg.end()) continue;
    return fmt::format(", {} {}", label, it->is_string() ? it->get<std::string>() : it->dump());
  }
  return {};
}

std::string model_summary(const CkptLayout& layout) {
  if (layout.model_config_json.empty())
    return fmt::format("model: {} blocks (no config stored)", layout.n_blocks);
  const auto cfg = nlohmann::json::parse(layout.model_config_json, nullptr, false);
  if (cfg.is_discarded() || !cfg.is_object())
    return fmt::format("model: {} blocks (stored config is not a JSON object)", layout.n_blocks);
  auto type = cfg.find("model_type");
  return fmt::format(
      "model: {} (family {}), {} blocks{}{}{}{}",
      type != cfg.end() && type->is_string() ? type->get<std::string>() : "bloom", layout.family,
      layout.n_blocks, config_item(cfg, "hidden", {"hidden_size", "n_embed"}),
      config_item(cfg, "heads", {"n_head", "num_attention_heads"}),
      config_item(cfg, "vocab", {"vocab_size"}), config_item(cfg, "dtype", {"torch_dtype"}));
}

const char* yes_no(bool b) { return b ? "true" : "false"; }

std::string run_settings(const CkptRunSpec& r) {
  return fmt::format(
      "bits {}, group_size {}, sym {}, act_order {}, static_groups {}, true_sequential {}, "
      "damp_percent {}, block_size {}, mse_clip {}",
      r.bits, r.group_size, yes_no(r.sym), yes_no(r.act_order), yes_no(r.static_groups),
      yes_no(r.true_sequential), r.damp_percent, r.block_size, yes_no(r.mse_clip));
}

// Which original weights the file vouches for (docs/checkpoint-format.md, weights_digest).
std::string weights_digest_summary(const Checkpoint& ckpt) {
  if (!ckpt.has_weights_digests())
    return "weights digests: none (the file predates them: a resume or eval cannot check the "
           "model's weights against it)\n";
  const CkptLayout& layout = ckpt.layout();
  const std::vector<uint64_t> digests = ckpt.weights_digests();
  // Complete blocks depend on every block up to the last complete one (of any run).
  int64_t last = -1;
  for (const auto& run : layout.runs) {
    const auto done = ckpt.completion(run.name);
    for (size_t b = 0; b < done.size(); ++b)
      if (done[b] != 0) last = std::max(last, static_cast<int64_t>(b));
  }
  int64_t known = 0;
  std::vector<int64_t> unvouched;  // complete blocks depend on them, no digest (an older writer)
  for (int64_t b = 0; b < layout.n_blocks; ++b) {
    if (digests[static_cast<size_t>(b)] != 0) ++known;
    if (b <= last && digests[static_cast<size_t>(b)] == 0) unvouched.push_back(b);
  }
  std::string out = fmt::format(
      "weights digests: {} of {} blocks, embedding {}", known, layout.n_blocks,
      digests.back() != 0 ? fmt::format("{:016x}", digests.back()) : std::string("not yet"));
  if (!unvouched.empty())
    out += fmt::format("; none for block(s) {} that complete blocks depend on (not checked)",
                       format_block_list(unvouched));
  return out + "\n";
}

}  // namespace

std::string format_block_list(const std::vector<int64_t>& blocks) {
  if (blocks.empty()) return "none";
  std::string out;
  for (size_t i = 0; i < blocks.size();) {
    size_t j = i;
    while (j + 1 < blocks.size() && blocks[j + 1] == blocks[j] + 1) ++j;
    if (!out.empty()) out += ", ";
    out += j == i ? fmt::format("{}", blocks[i]) : fmt::format("{}-{}", blocks[i], blocks[j]);
    i = j + 1;
  }
  return out;
}

std::string inspect_checkpoint(const std::string& path) {
  const Checkpoint ckpt = Checkpoint::open_read(path);
  const CkptLayout& layout = ckpt.layout();
  std::string out = fmt::format("checkpoint {} ({} format {}, written by gptqd {})\n", path,
                                kCheckpointFormat, ckpt.format_version(), ckpt.writer_version());
  out += model_summary(layout) + "\n";
  out += fmt::format("fingerprint: {}\n", layout.fingerprint);
  out += weights_digest_summary(ckpt);
  size_t name_width = 5;
  for (const auto& l : layout.layers) name_width = std::max(name_width, l.name.size());
  out += fmt::format("layers per block, in true-sequential groups (a group shares one input):\n");
  for (size_t i = 0; i < layout.layers.size(); ++i) {
    const CkptLayerShape& l = layout.layers[i];
    out +=
        fmt::format("  group {}  {:<{}}  {} x {}{}\n", l.group >= 0 ? l.group : static_cast<int>(i),
                    l.name, name_width, l.rows, l.cols, l.bias ? "" : "  (no bias)");
  }
  if (has_block_kinds(layout)) {
    out += "block kinds (each block holds its kind's layers only):\n";
    for (size_t k = 0; k < layout.kind_layers.size(); ++k) {
      std::vector<int64_t> blocks;
      for (int64_t b = 0; b < layout.n_blocks; ++b)
        if (layout.block_kind[static_cast<size_t>(b)] == static_cast<int>(k)) blocks.push_back(b);
      out += fmt::format("  kind {}: {} layers, blocks {}\n", k, layout.kind_layers[k].size(),
                         format_block_list(blocks));
    }
  }

  for (const auto& run : layout.runs) {
    const auto done = ckpt.completion(run.name);
    std::vector<int64_t> missing;
    for (int64_t b = 0; b < layout.n_blocks; ++b)
      if (!done[b]) missing.push_back(b);
    const int64_t n_done = layout.n_blocks - static_cast<int64_t>(missing.size());
    out += fmt::format("\nrun {}: {}\n", run.name, run_settings(run));
    out += fmt::format("  blocks complete: {}/{}", n_done, layout.n_blocks);
    out += missing.empty() ? "\n" : fmt::format(", missing: {}\n", format_block_list(missing));
    if (n_done == 0) continue;
    // Mixtures of experts: the calibration tokens each routed expert's layer saw.
    const bool moe = layout.family == "moe";
    out += fmt::format("  {:>5}  {:<{}}  {:>13}  {:>11}  {:>11}  {:>11}  {:>9}{}\n", "block",
                       "layer", name_width, "shape", "gptq_err", "rtn_err", "loss", "seconds",
                       moe ? "    tokens" : "");
    double sum_gptq = 0, sum_rtn = 0, sum_seconds = 0;
    for (int64_t b = 0; b < layout.n_blocks; ++b) {
      if (!done[b]) continue;
      for (int li : block_layers(layout, b)) {
        const CkptLayerShape& l = layout.layers[static_cast<size_t>(li)];
        const LayerStats s = ckpt.read_stats(run.name, b, l.name);
        std::string tokens;
        if (moe) {
          const int64_t t = ckpt.read_tokens(run.name, b, l.name);
          tokens = fmt::format("  {:>8}", t >= 0 ? std::to_string(t) : "-");
        }
        out += fmt::format("  {:>5}  {:<{}}  {:>13}  {:>11.4e}  {:>11.4e}  {:>11.4e}  {:>9.2f}{}\n",
                           b, l.name, name_width, fmt::format("{}x{}", l.rows, l.cols), s.gptq_err,
                           s.rtn_err, s.gptq_loss, s.seconds, tokens);
        sum_gptq += s.gptq_err;
        sum_rtn += s.rtn_err;
        sum_seconds += s.seconds;
      }
    }
    out +=
        fmt::format("  sum over complete blocks: gptq_err {:.4e}, rtn_err {:.4e}, seconds {:.2f}\n",
                    sum_gptq, sum_rtn, sum_seconds);
  }
  return out;
}

}  // namespace gptqd
