// Shared by the checkpoint unit tests: a small two-run layout, random valid layer data, row
// ranges of it as a replica would write them, and a fixture with a scratch file.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "io/checkpoint/checkpoint.h"
#include "base/check.h"
#include "tests/test_util.h"

namespace gptqd {

inline CkptLayout small_layout() {
  CkptLayout l;
  l.n_blocks = 3;
  l.layers = {{"self_attention.query_key_value", 12, 8}, {"self_attention.dense", 4, 6}};
  CkptRunSpec a;
  a.name = "w4g4";
  a.bits = 4;
  a.group_size = 4;
  a.act_order = true;
  a.static_groups = true;
  a.damp_percent = 0.05;
  a.block_size = 64;
  CkptRunSpec b;
  b.name = "w3gall";
  b.bits = 3;
  b.group_size = -1;
  b.sym = true;
  b.true_sequential = false;
  b.mse_clip = true;
  l.runs = {a, b};
  l.model_config_json = R"({"model_type": "bloom", "n_layer": 3, "hidden_size": 4, "n_head": 2})";
  // Longer than the 64 KiB an HDF5 attribute can hold inline, with non-ASCII text.
  l.job_config_yaml = "# résumé ✓\n" + std::string(70000, 'x') + "\n";
  l.fingerprint = "fp-1234";
  return l;
}

// Random but valid contents for rows [rb, re) of a layer.
inline LayerData random_layer(const CkptLayout& l, int ri, int li, int64_t rb, int64_t re,
                              uint32_t seed) {
  const CkptRunSpec& run = l.runs[ri];
  const int64_t cols = l.layers[li].cols, nr = re - rb, groups = run.groups(cols);
  std::mt19937 gen(seed);
  LayerData d;
  for (int64_t i = 0; i < nr * cols; ++i) d.codes.push_back(gen() % (1u << run.bits));
  d.scales = test::random_vector(groups * nr, seed + 1, 0.01f, 1.f);
  d.zeros = test::random_vector(groups * nr, seed + 2, 0.f, 7.f);
  d.bias = test::random_vector(nr, seed + 3);
  for (int64_t c = 0; c < cols; ++c) {
    d.g_idx.push_back(static_cast<int32_t>(gen() % groups));
    d.perm.push_back(static_cast<int32_t>(cols - 1 - c));
  }
  d.stats = {1.5 + seed, 0.25, 0.75, 3.0, 0.01};
  return d;
}

// Row block [rb, re) of a full layer's data, as the writer of those rows would pass it.
inline LayerData rows_of(const LayerData& full, int64_t rows, int64_t cols, int64_t groups,
                         int64_t rb, int64_t re) {
  LayerData d;
  d.codes.assign(full.codes.begin() + rb * cols, full.codes.begin() + re * cols);
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t r = rb; r < re; ++r) {
      d.scales.push_back(full.scales[g * rows + r]);
      d.zeros.push_back(full.zeros[g * rows + r]);
    }
  d.bias.assign(full.bias.begin() + rb, full.bias.begin() + re);
  if (rb == 0) {
    d.g_idx = full.g_idx;
    d.perm = full.perm;
    d.stats = full.stats;
  }
  return d;
}

inline void expect_same(const LayerData& a, const LayerData& b) {
  EXPECT_EQ(a.codes, b.codes);
  EXPECT_EQ(a.scales, b.scales);
  EXPECT_EQ(a.zeros, b.zeros);
  EXPECT_EQ(a.g_idx, b.g_idx);
  EXPECT_EQ(a.perm, b.perm);
  EXPECT_EQ(a.bias, b.bias);
  EXPECT_EQ(a.stats.gptq_loss, b.stats.gptq_loss);
  EXPECT_EQ(a.stats.gptq_err, b.stats.gptq_err);
  EXPECT_EQ(a.stats.rtn_err, b.stats.rtn_err);
  EXPECT_EQ(a.stats.seconds, b.stats.seconds);
  EXPECT_EQ(a.stats.damp, b.stats.damp);
}

template <typename F>
std::string input_error_of(F&& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("not an InputError: ") + e.what();
  }
  return "no exception";
}

inline bool has_h5py() {
  return std::system("/usr/bin/python3 -c 'import h5py' >/dev/null 2>&1") == 0;
}

class CheckpointFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::scratch_dir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    path_ = (dir_ / "ckpt.h5").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
  std::string path_;
};

}  // namespace gptqd
