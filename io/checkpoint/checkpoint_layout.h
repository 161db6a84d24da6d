// What a gptqd checkpoint holds, as plain data: the shape of the file (blocks, the linear layers
// of a block, the runs of a sweep) and the payload of one quantized layer. No HDF5 here; the
// file format itself is described in docs/checkpoint-format.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gptqd {

// One linear layer of a transformer block (of every block, or of the blocks of its kinds:
// CkptLayout::kind_layers).
struct CkptLayerShape {
  std::string name;            // e.g. "self_attention.dense"
  int64_t rows = 0, cols = 0;  // out x in
  int group = -1;              // its true-sequential group (layers of a group share their
                               // input); -1 in files written before families: its own group
  bool bias = true;            // the model's layer has a bias (stored as zeros otherwise)
};

// One run = one sweep point: the quantizer settings it was made with.
struct CkptRunSpec {
  std::string name;  // "w4g128"
  int bits = 4;
  int64_t group_size = 128;  // -1 = one group per row
  bool sym = false;
  bool act_order = false;
  bool static_groups = false;
  bool true_sequential = true;
  double damp_percent = 0.01;
  int64_t block_size = 128;
  bool mse_clip = false;

  // Number of groups of a row of `cols` inputs: ceil(cols / group_size), 1 when group_size is -1.
  // Throws gptqd::Error for group_size 0 or below -1.
  int64_t groups(int64_t cols) const;
};

struct CkptLayout {
  int64_t n_blocks = 0;
  std::string family = "bloom";        // the model family (io/model/model_config.h family_name)
  std::vector<CkptLayerShape> layers;  // the linear layers of one block, in processing order
  // Blocks of several kinds (an MoE model with dense-MLP blocks): layers is then every kind's
  // layers (kind 0's in processing order, then each further kind's new names), kind_layers[k]
  // kind k's layers (indices into layers, in processing order) and block_kind[b] block b's kind.
  // Both empty: every block has every layer (format_version <= 3 files, every dense model).
  std::vector<std::vector<int>> kind_layers;
  std::vector<int> block_kind;
  std::vector<CkptRunSpec> runs;
  std::string model_config_json;  // config.json verbatim
  std::string job_config_yaml;    // the resolved job config
  std::string fingerprint;        // hash of model + calibration + settings; resume checks it
};

// Whether the blocks are of several kinds (CkptLayout::kind_layers).
inline bool has_block_kinds(const CkptLayout& l) { return !l.kind_layers.empty(); }
// The layers of block b (indices into layout.layers, in processing order): all of them unless the
// blocks are of several kinds. b must be in range.
std::vector<int> block_layers(const CkptLayout& layout, int64_t b);
// Whether block b has layer li.
bool block_has_layer(const CkptLayout& layout, int64_t b, int li);

// Per-layer numbers the reports show. Stored as the columns of /runs/<run>/stats.
struct LayerStats {
  double gptq_loss = 0, gptq_err = 0, rtn_err = 0, seconds = 0, damp = 0;
};
inline constexpr int kLayerStatsColumns = 5;
inline constexpr const char* kLayerStatsNames[kLayerStatsColumns] = {"gptq_loss", "gptq_err",
                                                                     "rtn_err", "seconds", "damp"};

// One linear layer, rows [row_begin, row_end) of it (nr = row_end - row_begin rows).
struct LayerData {
  std::vector<uint8_t> codes;        // [nr, cols], original column order
  std::vector<float> scales, zeros;  // [groups, nr]
  std::vector<int32_t> g_idx, perm;  // [cols] each; used only from the row_begin == 0 writer
  std::vector<float> bias;           // [nr]
  LayerStats stats;                  // used only from the row_begin == 0 writer
};

// Bounds validate_layout applies (far above any released model).
inline constexpr int64_t kMaxCkptBlocks = int64_t{1} << 20;
inline constexpr int64_t kMaxCkptLayerDim = int64_t{1} << 24;
inline constexpr int64_t kMaxCkptLayerElements = int64_t{1} << 36;

// Throws gptqd::Error when the layout cannot be stored: no blocks, no layers or runs, an empty or
// duplicate name, a name with '/' (or "." / ".."), a non-positive shape or one beyond the bounds
// above, bits outside 1..8, a bad group_size or block_size, block kinds that do not cover the
// blocks, name a layer out of range or twice, or leave a layer in no kind.
void validate_layout(const CkptLayout& layout);

// Empty when `stored` (read from a file) and `wanted` describe the same job: same fingerprint,
// n_blocks, layers (names and shapes, in order), block kinds and runs (the same names with the same
// settings, in any order). Otherwise one short phrase naming the first difference, e.g. "run
// 'w4g128' has bits 3 in the file, 4 now". The config texts are not compared: the fingerprint
// covers what matters, and a changed eval section must not block a resume.
std::string layout_difference(const CkptLayout& stored, const CkptLayout& wanted);

// Index of the layer / run with this name, or -1.
int layer_index(const CkptLayout& layout, const std::string& layer);
int run_index(const CkptLayout& layout, const std::string& run);

}  // namespace gptqd
