// A full file system: the job refuses a checkpoint whose data cannot fit before any work (the
// sizes come from checkpoint_data_bytes), and a write that fails because the disk filled up
// during the job says so (was an HDF5 / MPI-IO error chain that never named the cause). The
// full disk is a real one: a small tmpfs mounted for the test (skipped where mounting is not
// allowed).
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "io/checkpoint/checkpoint.h"
#include "base/check.h"
#include "tests/checkpoint_fixture.h"

namespace gptqd {
namespace {

TEST(CheckpointSpace, DataBytesFollowTheFormat) {
  const CkptLayout l = small_layout();
  // Per layer and block: codes r*c, scales + zeros 8*g*r, g_idx + perm 8*c, bias + checksum
  // 12*r + 8. w4g4: qkv 12x8 (2 groups), dense 4x6 (2 groups); w3gall: 1 group each.
  const uint64_t w4 = (96 + 8 * 2 * 12 + 64 + 144 + 8) + (24 + 8 * 2 * 4 + 48 + 48 + 8);
  const uint64_t w3 = (96 + 8 * 12 + 64 + 144 + 8) + (24 + 8 * 4 + 48 + 48 + 8);
  EXPECT_EQ(checkpoint_data_bytes(l), 3 * (w4 + w3));
  const std::vector<std::vector<uint8_t>> done = {{1, 0, 1}, {0, 0, 0}};
  EXPECT_EQ(checkpoint_data_bytes(l, &done), w4 + 3 * w3);
}

class FullDisk : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::scratch_dir("FullDisk");
    const std::string cmd = "mount -t tmpfs -o size=256k tmpfs '" + dir_.string() + "' 2>/dev/null";
    mounted_ = std::system(cmd.c_str()) == 0;
  }
  void TearDown() override {
    if (mounted_) std::system(("umount '" + dir_.string() + "'").c_str());
    std::filesystem::remove_all(dir_);
  }
  std::filesystem::path dir_;
  bool mounted_ = false;
};

TEST_F(FullDisk, AFailedWriteSaysTheDiskIsFull) {
  if (!mounted_) GTEST_SKIP() << "cannot mount a tmpfs here (not root, or mounts not allowed)";
  const std::string path = (dir_ / "ck.h5").string();
  CkptLayout l;
  l.n_blocks = 2;
  l.layers = {{"dense", 512, 512}};  // 256 KiB of codes per block: more than the disk holds
  CkptRunSpec r;
  r.name = "w4g128";
  l.runs = {r};
  l.model_config_json = "{}";
  l.fingerprint = "fp";
  EXPECT_LT(free_bytes_for(path), checkpoint_data_bytes(l));   // what the job refuses up front
  Checkpoint ck = Checkpoint::create(path, l, MPI_COMM_SELF);  // sparse: the metadata fits
  LayerData d;
  d.codes.assign(512 * 512, 3);
  d.scales.assign(4 * 512, 0.5f);
  d.zeros.assign(4 * 512, 8.f);
  d.bias.assign(512, 0.f);
  for (int c = 0; c < 512; ++c) {
    d.g_idx.push_back(c / 128);
    d.perm.push_back(c);
  }
  std::string msg;
  try {
    for (int64_t b = 0; b < 2; ++b) ck.write_layer("w4g128", b, "dense", 0, 512, d);
  } catch (const Error& e) {
    msg = e.what();
  }
  EXPECT_NE(msg.find("checkpoint " + path + ": no space left on the file system holding it"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("run w4g128 block"), std::string::npos) << msg;
  ck.close();
}

}  // namespace
}  // namespace gptqd
