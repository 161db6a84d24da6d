#include "io/checkpoint/checkpoint_meta.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "base/check.h"
#include "io/checkpoint/checkpoint.h"
#include "io/checkpoint/hdf5_util.h"

// The build may pass the project version; the fallback keeps this file self-contained.
#ifndef GPTQD_VERSION_STRING
#define GPTQD_VERSION_STRING "0.1.0"
#endif

namespace gptqd::ckpt {

using h5::Hid;

std::string run_path(const std::string& run) { return "/runs/" + run; }

std::string layer_path(const std::string& run, int64_t block, const std::string& layer) {
  return fmt::format("/runs/{}/blocks/{}/{}", run, block, layer);
}

namespace {

// Contiguous, allocated when created (parallel HDF5 cannot allocate later without a collective
// call), never filled: every byte is written by a rank before its block is marked complete, and
// filling would write the whole (for BLOOM-176B: hundreds of GB) file once more.
Hid raw_dcpl() {
  Hid p = h5::make_plist(H5P_DATASET_CREATE);
  h5::check(H5Pset_layout(p.get(), H5D_CONTIGUOUS), "H5Pset_layout");
  h5::check(H5Pset_alloc_time(p.get(), H5D_ALLOC_TIME_EARLY), "H5Pset_alloc_time");
  h5::check(H5Pset_fill_time(p.get(), H5D_FILL_TIME_NEVER), "H5Pset_fill_time");
  return p;
}

// Small bookkeeping datasets: contiguous, allocated and filled with `fill` at creation.
template <typename T>
Hid filled_dcpl(hid_t mem_type, T fill) {
  Hid p = h5::make_plist(H5P_DATASET_CREATE);
  h5::check(H5Pset_layout(p.get(), H5D_CONTIGUOUS), "H5Pset_layout");
  h5::check(H5Pset_alloc_time(p.get(), H5D_ALLOC_TIME_EARLY), "H5Pset_alloc_time");
  h5::check(H5Pset_fill_value(p.get(), mem_type, &fill), "H5Pset_fill_value");
  h5::check(H5Pset_fill_time(p.get(), H5D_FILL_TIME_ALLOC), "H5Pset_fill_time");
  return p;
}

Hid create_dataset(hid_t loc, const char* name, hid_t type, const std::vector<hsize_t>& dims,
                   hid_t dcpl) {
  Hid space = h5::make_space(dims);
  return h5::check(
      Hid(H5Dcreate2(loc, name, type, space.get(), H5P_DEFAULT, dcpl, H5P_DEFAULT), H5Dclose),
      fmt::format("cannot create dataset '{}'", name));
}

void write_run_attrs(hid_t g, const CkptRunSpec& r) {
  h5::write_attr(g, "name", r.name);
  h5::write_attr_int32(g, "bits", r.bits);
  h5::write_attr(g, "group_size", r.group_size);
  h5::write_attr_bool(g, "sym", r.sym);
  h5::write_attr_bool(g, "act_order", r.act_order);
  h5::write_attr_bool(g, "static_groups", r.static_groups);
  h5::write_attr_bool(g, "true_sequential", r.true_sequential);
  h5::write_attr(g, "damp_percent", r.damp_percent);
  h5::write_attr(g, "block_size", r.block_size);
  h5::write_attr_bool(g, "mse_clip", r.mse_clip);
}

CkptRunSpec read_run_attrs(hid_t g) {
  CkptRunSpec r;
  r.name = h5::read_attr_string(g, "name");
  r.bits = static_cast<int>(h5::read_attr_int64(g, "bits"));
  r.group_size = h5::read_attr_int64(g, "group_size");
  r.sym = h5::read_attr_bool(g, "sym");
  r.act_order = h5::read_attr_bool(g, "act_order");
  r.static_groups = h5::read_attr_bool(g, "static_groups");
  r.true_sequential = h5::read_attr_bool(g, "true_sequential");
  r.damp_percent = h5::read_attr_double(g, "damp_percent");
  r.block_size = h5::read_attr_int64(g, "block_size");
  r.mse_clip = h5::read_attr_bool(g, "mse_clip");
  return r;
}

void write_block(hid_t blocks, int64_t block, const CkptLayout& layout, const CkptRunSpec& run,
                 hid_t dcpl) {
  Hid bg = h5::create_group(blocks, std::to_string(block));
  for (int li : block_layers(layout, block)) {
    const CkptLayerShape& l = layout.layers[static_cast<size_t>(li)];
    Hid lg = h5::create_group(bg.get(), l.name);
    const hsize_t rows = l.rows, cols = l.cols, groups = run.groups(l.cols);
    create_dataset(lg.get(), kCodes, H5T_STD_U8LE, {rows, cols}, dcpl);
    create_dataset(lg.get(), kScales, H5T_IEEE_F32LE, {groups, rows}, dcpl);
    create_dataset(lg.get(), kZeros, H5T_IEEE_F32LE, {groups, rows}, dcpl);
    create_dataset(lg.get(), kGIdx, H5T_STD_I32LE, {cols}, dcpl);
    create_dataset(lg.get(), kPerm, H5T_STD_I32LE, {cols}, dcpl);
    create_dataset(lg.get(), kBias, H5T_IEEE_F32LE, {rows}, dcpl);
    create_dataset(lg.get(), kChecksum, H5T_STD_U64LE, {rows + 1}, dcpl);
  }
}

}  // namespace

void write_layout(hid_t file, const CkptLayout& layout) {
  validate_layout(layout);
  h5::write_attr(file, "format", std::string(kCheckpointFormat));
  h5::write_attr(file, "format_version", static_cast<int64_t>(format_version_of(layout)));
  h5::write_attr(file, "gptqd_version", std::string(GPTQD_VERSION_STRING));
  h5::write_attr(file, "model_config", layout.model_config_json);
  h5::write_attr(file, "job_config", layout.job_config_yaml);
  h5::write_attr(file, "fingerprint", layout.fingerprint);
  h5::write_attr(file, "n_blocks", layout.n_blocks);
  std::vector<std::string> layer_names, run_names;
  std::vector<int64_t> shapes, groups, biases;
  for (size_t i = 0; i < layout.layers.size(); ++i) {
    const CkptLayerShape& l = layout.layers[i];
    layer_names.push_back(l.name);
    shapes.push_back(l.rows);
    shapes.push_back(l.cols);
    groups.push_back(l.group >= 0 ? l.group : static_cast<int64_t>(i));
    biases.push_back(l.bias ? 1 : 0);
  }
  for (const auto& r : layout.runs) run_names.push_back(r.name);
  h5::write_attr(file, "layers", layer_names);
  h5::write_attr(file, "layer_shapes", shapes, {layout.layers.size(), 2});
  h5::write_attr(file, "family", layout.family);
  h5::write_attr(file, "layer_groups", groups, {layout.layers.size()});
  h5::write_attr(file, "layer_bias", biases, {layout.layers.size()});
  h5::write_attr(file, "runs", run_names);
  if (has_block_kinds(layout)) {  // format_version 4
    // block_kind [n_blocks]; kind_layers: each kind's layer indices, each list ended by -1.
    std::vector<int64_t> kinds(layout.block_kind.begin(), layout.block_kind.end());
    std::vector<int64_t> lists;
    for (const auto& k : layout.kind_layers) {
      lists.insert(lists.end(), k.begin(), k.end());
      lists.push_back(-1);
    }
    h5::write_attr(file, "block_kind", kinds, {kinds.size()});
    h5::write_attr(file, "kind_layers", lists, {lists.size()});
  }

  const Hid raw = raw_dcpl();
  create_dataset(file, kWeightsDigest, H5T_STD_U64LE, {static_cast<hsize_t>(layout.n_blocks) + 1},
                 filled_dcpl<uint64_t>(H5T_NATIVE_UINT64, 0).get());
  const Hid complete_dcpl = filled_dcpl<uint8_t>(H5T_NATIVE_UINT8, 0);
  const Hid stats_dcpl = filled_dcpl<double>(H5T_NATIVE_DOUBLE, std::nan(""));
  const std::vector<const char*> stat_names(kLayerStatsNames,
                                            kLayerStatsNames + kLayerStatsColumns);

  Hid runs = h5::create_group(file, "runs");
  for (const auto& r : layout.runs) {
    Hid g = h5::create_group(runs.get(), r.name);
    write_run_attrs(g.get(), r);
    create_dataset(g.get(), kComplete, H5T_STD_U8LE, {static_cast<hsize_t>(layout.n_blocks)},
                   complete_dcpl.get());
    Hid stats = create_dataset(g.get(), kStats, H5T_IEEE_F64LE,
                               {static_cast<hsize_t>(layout.n_blocks), layout.layers.size(),
                                static_cast<hsize_t>(kLayerStatsColumns)},
                               stats_dcpl.get());
    h5::write_attr(stats.get(), "columns",
                   std::vector<std::string>(stat_names.begin(), stat_names.end()));
    if (layout.family == "moe") {
      Hid tokens = create_dataset(g.get(), kTokens, H5T_STD_I64LE,
                                  {static_cast<hsize_t>(layout.n_blocks), layout.layers.size()},
                                  filled_dcpl<int64_t>(H5T_NATIVE_INT64, -1).get());
      h5::write_attr(tokens.get(), "what",
                     std::string("calibration tokens routed to each expert layer (all replicas); "
                                 "-1: not an expert, or not written yet"));
    }
    Hid blocks = h5::create_group(g.get(), "blocks");
    for (int64_t b = 0; b < layout.n_blocks; ++b)
      write_block(blocks.get(), b, layout, r, raw.get());
  }
}

namespace {

// Readers skip the checksums of a file whose format_version is below 2, so a version written
// down by hand (or by a tool) would turn checking off for data that has them. A true old file
// has no checksum dataset at all: any one means the version was lowered. Every layer is looked
// at (a few thousand link lookups for a large sweep, only for such files), so deleting some of
// them does not help either.
void refuse_lowered_version(hid_t file, const std::string& path, int64_t version,
                            const CkptLayout& layout) {
  for (const CkptRunSpec& run : layout.runs)
    for (int64_t b = 0; b < layout.n_blocks; ++b)
      for (const CkptLayerShape& l : layout.layers) {
        const std::string sums = layer_path(run.name, b, l.name) + "/" + kChecksum;
        if (!h5::has_link(file, sums.c_str())) continue;
        throw InputError(fmt::format(
            "checkpoint {} has format_version {} but holds checksum datasets (first: {}), which "
            "only format_version 2 and later write: its format_version was lowered, and reading "
            "it as {} would skip the checksums; the file is refused (set format_version back "
            "to the value it had: 3, or 2 for a file written before gptqd used XXH3)",
            path, version, sums, version));
      }
}

}  // namespace

CkptLayout read_layout(hid_t file, const std::string& path) {
  const bool ours = h5::has_attr(file, "format") && [&] {
    try {
      return h5::read_attr_string(file, "format") == kCheckpointFormat;
    } catch (const Error&) {
      return false;
    }
  }();
  if (!ours)
    throw InputError(fmt::format(
        "{} is an HDF5 file but not a gptqd checkpoint (no root attribute format = \"{}\")", path,
        kCheckpointFormat));
  return as_damage(path, [&] {
    const int64_t version = h5::read_attr_int64(file, "format_version");
    if (version > kCheckpointBlockKindsFormatVersion || version < 1)
      throw InputError(fmt::format(
          "checkpoint {} has format_version {}; this gptqd reads format_version 1 to {}", path,
          version, kCheckpointBlockKindsFormatVersion));
    CkptLayout layout;
    layout.model_config_json = h5::read_attr_string(file, "model_config");
    layout.job_config_yaml = h5::read_attr_string(file, "job_config");
    layout.fingerprint = h5::read_attr_string(file, "fingerprint");
    layout.n_blocks = h5::read_attr_int64(file, "n_blocks");
    const auto names = h5::read_attr_strings(file, "layers");
    const auto shapes = h5::read_attr_int64s(file, "layer_shapes");
    if (shapes.size() != 2 * names.size())
      throw Error(
          fmt::format("'layer_shapes' has {} values for {} layers", shapes.size(), names.size()));
    // family, layer_groups and layer_bias came with model families; older files are BLOOM
    // checkpoints whose every layer is its own group and has a bias.
    if (h5::has_attr(file, "family")) layout.family = h5::read_attr_string(file, "family");
    std::vector<int64_t> groups, biases;
    if (h5::has_attr(file, "layer_groups")) groups = h5::read_attr_int64s(file, "layer_groups");
    if (h5::has_attr(file, "layer_bias")) biases = h5::read_attr_int64s(file, "layer_bias");
    if ((!groups.empty() && groups.size() != names.size()) ||
        (!biases.empty() && biases.size() != names.size()))
      throw Error(fmt::format("'layer_groups'/'layer_bias' do not match {} layers", names.size()));
    for (size_t i = 0; i < names.size(); ++i) {
      CkptLayerShape l{names[i], shapes[2 * i], shapes[2 * i + 1]};
      l.group = groups.empty() ? static_cast<int>(i) : static_cast<int>(groups[i]);
      l.bias = biases.empty() || biases[i] != 0;
      layout.layers.push_back(l);
    }
    // Block kinds came with format_version 4, which holds them always.
    if (version >= kCheckpointBlockKindsFormatVersion) {
      const auto kinds = h5::read_attr_int64s(file, "block_kind");
      const auto lists = h5::read_attr_int64s(file, "kind_layers");
      if (kinds.empty() || lists.empty() || lists.back() != -1)
        throw Error("'block_kind' / 'kind_layers' are empty or 'kind_layers' is not -1-ended");
      for (int64_t k : kinds) layout.block_kind.push_back(static_cast<int>(k));
      layout.kind_layers.emplace_back();
      for (size_t i = 0; i < lists.size(); ++i) {
        if (lists[i] >= 0) {
          layout.kind_layers.back().push_back(static_cast<int>(lists[i]));
        } else if (i + 1 < lists.size()) {
          layout.kind_layers.emplace_back();
        }
      }
    }
    for (const auto& name : h5::read_attr_strings(file, "runs")) {
      Hid g = h5::open_group(file, run_path(name));
      layout.runs.push_back(read_run_attrs(g.get()));
      if (layout.runs.back().name != name)
        throw Error(fmt::format("group '{}' is named '{}' in its attributes", run_path(name),
                                layout.runs.back().name));
    }
    validate_layout(layout);
    if (version < 2) refuse_lowered_version(file, path, version, layout);
    return layout;
  });
}

int64_t read_format_version(hid_t file, const std::string& path) {
  return as_damage(path, [&] { return h5::read_attr_int64(file, "format_version"); });
}

std::string read_writer_version(hid_t file, const std::string& path) {
  return as_damage(path, [&] { return h5::read_attr_string(file, "gptqd_version"); });
}

}  // namespace gptqd::ckpt
