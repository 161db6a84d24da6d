#include "io/checkpoint/checkpoint_layout.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <set>

#include "base/check.h"

namespace gptqd {

int64_t CkptRunSpec::groups(int64_t cols) const {
  GPTQD_CHECK(group_size == -1 || group_size > 0, "run '{}': group_size {} is neither -1 nor > 0",
              name, group_size);
  GPTQD_CHECK(cols > 0, "run '{}': groups() of {} columns", name, cols);
  if (group_size == -1) return 1;
  return cols / group_size + (cols % group_size != 0);  // no overflow for any group_size
}

namespace {

// HDF5 link names may not contain '/', and "." names the group itself.
void check_name(const std::string& what, const std::string& name) {
  GPTQD_CHECK(!name.empty(), "checkpoint layout: empty {} name", what);
  GPTQD_CHECK(name.find('/') == std::string::npos && name != "." && name != "..",
              "checkpoint layout: {} name '{}' cannot be an HDF5 group name", what, name);
}

template <typename T>
std::string show(const T& v) {
  return fmt::format("{}", v);
}
std::string show(bool v) { return v ? "true" : "false"; }

// "run 'x' has <field> <a> in the file, <b> now", or empty when equal.
template <typename T>
std::string field_difference(const std::string& run, const char* field, const T& stored,
                             const T& wanted) {
  if (stored == wanted) return {};
  return fmt::format("run '{}' has {} {} in the file, {} now", run, field, show(stored),
                     show(wanted));
}

std::string run_difference(const CkptRunSpec& s, const CkptRunSpec& w) {
  const std::string diffs[] = {
      field_difference(s.name, "bits", s.bits, w.bits),
      field_difference(s.name, "group_size", s.group_size, w.group_size),
      field_difference(s.name, "sym", s.sym, w.sym),
      field_difference(s.name, "act_order", s.act_order, w.act_order),
      field_difference(s.name, "static_groups", s.static_groups, w.static_groups),
      field_difference(s.name, "true_sequential", s.true_sequential, w.true_sequential),
      field_difference(s.name, "damp_percent", s.damp_percent, w.damp_percent),
      field_difference(s.name, "block_size", s.block_size, w.block_size),
      field_difference(s.name, "mse_clip", s.mse_clip, w.mse_clip),
  };
  for (const auto& d : diffs)
    if (!d.empty()) return d;
  return {};
}

}  // namespace

void validate_layout(const CkptLayout& layout) {
  // Bounds far above any model (BLOOM-176B: 70 blocks, layers of at most 57344 x 14336) keep a
  // damaged file's numbers from sizing a reader's allocations.
  GPTQD_CHECK(layout.n_blocks > 0 && layout.n_blocks <= kMaxCkptBlocks,
              "checkpoint layout: n_blocks is {} (1..{})", layout.n_blocks, kMaxCkptBlocks);
  GPTQD_CHECK(!layout.layers.empty(), "checkpoint layout: no layers");
  GPTQD_CHECK(!layout.runs.empty(), "checkpoint layout: no runs");
  std::set<std::string> names;
  for (const auto& l : layout.layers) {
    check_name("layer", l.name);
    GPTQD_CHECK(names.insert(l.name).second, "checkpoint layout: layer '{}' listed twice", l.name);
    GPTQD_CHECK(l.rows > 0 && l.cols > 0 && l.rows <= kMaxCkptLayerDim &&
                    l.cols <= kMaxCkptLayerDim && l.rows * l.cols <= kMaxCkptLayerElements,
                "checkpoint layout: layer '{}' has shape {}x{} (each side 1..{}, at most {} "
                "weights)",
                l.name, l.rows, l.cols, kMaxCkptLayerDim, kMaxCkptLayerElements);
    // g_idx and perm are int32 column indices.
    GPTQD_CHECK(l.cols <= std::numeric_limits<int32_t>::max(),
                "checkpoint layout: layer '{}' has {} columns, more than int32 indexes", l.name,
                l.cols);
  }
  if (has_block_kinds(layout)) {
    GPTQD_CHECK(static_cast<int64_t>(layout.block_kind.size()) == layout.n_blocks,
                "checkpoint layout: {} block kinds for {} blocks", layout.block_kind.size(),
                layout.n_blocks);
    std::vector<bool> used(layout.layers.size(), false);
    for (const std::vector<int>& kind : layout.kind_layers) {
      GPTQD_CHECK(!kind.empty(), "checkpoint layout: a block kind without layers");
      std::set<int> seen;
      for (int li : kind) {
        GPTQD_CHECK(
            li >= 0 && li < static_cast<int>(layout.layers.size()) && seen.insert(li).second,
            "checkpoint layout: a block kind lists layer {} (of {}) out of range or twice", li,
            layout.layers.size());
        used[static_cast<size_t>(li)] = true;
      }
    }
    for (size_t i = 0; i < used.size(); ++i)
      GPTQD_CHECK(used[i], "checkpoint layout: layer '{}' is in no block kind",
                  layout.layers[i].name);
    for (int k : layout.block_kind)
      GPTQD_CHECK(k >= 0 && k < static_cast<int>(layout.kind_layers.size()),
                  "checkpoint layout: block kind {} of {}", k, layout.kind_layers.size());
  } else {
    GPTQD_CHECK(layout.block_kind.empty(), "checkpoint layout: block kinds without their layers");
  }
  names.clear();
  for (const auto& r : layout.runs) {
    check_name("run", r.name);
    GPTQD_CHECK(names.insert(r.name).second, "checkpoint layout: run '{}' listed twice", r.name);
    GPTQD_CHECK(r.bits >= 1 && r.bits <= 8,
                "checkpoint layout: run '{}' has bits {} (codes are uint8)", r.name, r.bits);
    GPTQD_CHECK(r.group_size == -1 || r.group_size > 0,
                "checkpoint layout: run '{}' has group_size {}", r.name, r.group_size);
    GPTQD_CHECK(r.block_size > 0, "checkpoint layout: run '{}' has block_size {}", r.name,
                r.block_size);
  }
}

std::string layout_difference(const CkptLayout& stored, const CkptLayout& wanted) {
  if (stored.fingerprint != wanted.fingerprint)
    return fmt::format(
        "fingerprint {} in the file, {} now: the model, calibration or settings changed",
        stored.fingerprint, wanted.fingerprint);
  if (stored.family != wanted.family)
    return fmt::format("model family {} in the file, {} now", stored.family, wanted.family);
  if (stored.n_blocks != wanted.n_blocks)
    return fmt::format("{} blocks in the file, {} now", stored.n_blocks, wanted.n_blocks);
  if (stored.layers.size() != wanted.layers.size())
    return fmt::format("{} layers per block in the file, {} now", stored.layers.size(),
                       wanted.layers.size());
  for (size_t i = 0; i < stored.layers.size(); ++i) {
    const auto& s = stored.layers[i];
    const auto& w = wanted.layers[i];
    if (s.name != w.name)
      return fmt::format("layer {} is '{}' in the file, '{}' now", i, s.name, w.name);
    if (s.rows != w.rows || s.cols != w.cols)
      return fmt::format("layer '{}' is {}x{} in the file, {}x{} now", s.name, s.rows, s.cols,
                         w.rows, w.cols);
    // group -1: the layer is its own group (files and layouts from before model families)
    const int sg = s.group >= 0 ? s.group : static_cast<int>(i);
    const int wg = w.group >= 0 ? w.group : static_cast<int>(i);
    if (sg != wg || s.bias != w.bias)
      return fmt::format("layer '{}' has group {} and bias {} in the file, {} and {} now", s.name,
                         sg, s.bias, wg, w.bias);
  }
  if (stored.kind_layers != wanted.kind_layers || stored.block_kind != wanted.block_kind)
    return fmt::format(
        "the blocks' kinds (which blocks have which layers) differ: {} kind(s) in "
        "the file, {} now",
        std::max<size_t>(1, stored.kind_layers.size()),
        std::max<size_t>(1, wanted.kind_layers.size()));
  for (const auto& w : wanted.runs) {
    const int i = run_index(stored, w.name);
    if (i < 0) return fmt::format("run '{}' is not in the file", w.name);
    std::string d = run_difference(stored.runs[i], w);
    if (!d.empty()) return d;
  }
  for (const auto& s : stored.runs)
    if (run_index(wanted, s.name) < 0)
      return fmt::format("run '{}' is in the file but not in the job", s.name);
  return {};
}

std::vector<int> block_layers(const CkptLayout& layout, int64_t b) {
  GPTQD_CHECK(b >= 0 && b < layout.n_blocks, "block {} of {}", b, layout.n_blocks);
  if (has_block_kinds(layout))
    return layout.kind_layers[static_cast<size_t>(layout.block_kind[static_cast<size_t>(b)])];
  std::vector<int> all(layout.layers.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int>(i);
  return all;
}

bool block_has_layer(const CkptLayout& layout, int64_t b, int li) {
  if (!has_block_kinds(layout)) return li >= 0 && li < static_cast<int>(layout.layers.size());
  const std::vector<int>& k =
      layout.kind_layers[static_cast<size_t>(layout.block_kind[static_cast<size_t>(b)])];
  return std::find(k.begin(), k.end(), li) != k.end();
}

int layer_index(const CkptLayout& layout, const std::string& layer) {
  for (size_t i = 0; i < layout.layers.size(); ++i)
    if (layout.layers[i].name == layer) return static_cast<int>(i);
  return -1;
}

int run_index(const CkptLayout& layout, const std::string& run) {
  for (size_t i = 0; i < layout.runs.size(); ++i)
    if (layout.runs[i].name == run) return static_cast<int>(i);
  return -1;
}

}  // namespace gptqd
