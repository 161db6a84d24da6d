// Issue 14: hostile job files, guarded outputs, damaged checkpoint data. The multi-process
// cases (exit codes, no file written, memory under ulimit) are tests/cli/hostile_input.sh and
// tests/cli/output_guard.sh.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>

#include "io/checkpoint/checkpoint.h"
#include "io/checkpoint/checkpoint_guard.h"
#include "io/job/job_config.h"
#include "base/check.h"

namespace gptqd {
namespace {

std::string yaml_error(const std::string& text) {
  try {
    parse_job_config(text, "t.yaml");
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no error)";
}

// yaml-cpp 0.7's LoadAll loops forever on these, allocating; they must fail at once.
TEST(HostileJobYaml, CommaOutsideAFlowCollectionFailsFast) {
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(yaml_error(","),
            "t.yaml:1:1: YAML syntax error: unexpected ',' outside a [ ] or { } list");
  EXPECT_EQ(yaml_error("[a],"),
            "t.yaml:1:4: YAML syntax error: unexpected ',' outside a [ ] or { } list");
  EXPECT_NE(yaml_error("model:\n  path: m\n,\n").find("t.yaml:3:1: YAML syntax error"),
            std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

TEST(HostileJobYaml, SizesAreBounded) {
  const std::string base =
      "model: {path: m}\ncalibration: {tokens: t, nsamples: 8, seqlen: 8}\noutput: {checkpoint: "
      "o.h5}\n";
  EXPECT_NE(yaml_error(base + "quant: {group_size: 9223372036854775807}\n")
                .find("quant.group_size: 9223372036854775807 is out of range"),
            std::string::npos);
  EXPECT_NO_THROW(parse_job_config(base + "quant: {group_size: 2147483647}\n", "t.yaml"));
  EXPECT_NE(yaml_error("model: {path: m}\ncalibration: {tokens: t, nsamples: 4611686018427387904, "
                       "seqlen: 4}\noutput: {checkpoint: o.h5}\n")
                .find("nsamples x seqlen = 4611686018427387904 x 4 is more than"),
            std::string::npos);
  EXPECT_NE(yaml_error(base + "quant: {damp_percent: 1e-300}\n").find("is too small"),
            std::string::npos);
  std::string list = "[2";
  for (int i = 0; i < 5000; ++i) list += ", 3";
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_NE(yaml_error(base + "sweep: {bits: " + list + "]}\n")
                .find("sweep.bits: lists 5001 values; a sweep expands to at most 4096 runs"),
            std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

class GuardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("gptqd-guard-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string file(const std::string& name, const std::string& text = "x") {
    const std::string p = (dir_ / name).string();
    std::ofstream(p) << text;
    return p;
  }
  std::filesystem::path dir_;
};

TEST_F(GuardTest, OutputThatIsAnInputByIdentityIsRefused) {
  const std::string model = file("model.safetensors");
  const std::vector<NamedInput> inputs = {{"model file", model}};
  std::filesystem::create_hard_link(model, dir_ / "hard.h5");
  std::filesystem::create_symlink(model, dir_ / "soft.h5");
  for (const std::string& out : {model, (dir_ / "." / "model.safetensors").string(),
                                 (dir_ / "hard.h5").string(), (dir_ / "soft.h5").string()}) {
    try {
      check_output_not_input(out, inputs);
      ADD_FAILURE() << out << " accepted";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("is the model file"), std::string::npos) << e.what();
    }
  }
  EXPECT_NO_THROW(check_output_not_input((dir_ / "new.h5").string(), inputs));
  EXPECT_NO_THROW(check_output_not_input(file("other.h5"), inputs));        // an old checkpoint
  EXPECT_THROW(check_output_not_input(dir_.string(), inputs), InputError);  // a directory
}

TEST_F(GuardTest, SecondLockIsRefusedNamingTheHolder) {
  const std::string ckpt = (dir_ / "job.h5").string();
  {
    CheckpointLock first = CheckpointLock::acquire(ckpt);
    ASSERT_TRUE(first.held());
    try {
      CheckpointLock::acquire(ckpt);
      ADD_FAILURE() << "second lock granted";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(
                    fmt::format("in use by another gptqd job (pid {} on ", ::getpid())),
                std::string::npos)
          << e.what();
    }
  }
  EXPECT_FALSE(std::filesystem::exists(ckpt + ".lock"));  // removed on release
  EXPECT_TRUE(CheckpointLock::acquire(ckpt).held());
}

TEST_F(GuardTest, ReplacedOrRemovedCheckpointIsDetected) {
  const std::string ckpt = file("job.h5");
  const FileIdentity id = file_identity(ckpt);
  EXPECT_NO_THROW(check_still_same_file(ckpt, id));
  file("job.h5.new");  // a second job's create: a new file renamed over the path
  std::filesystem::rename(dir_ / "job.h5.new", ckpt);
  EXPECT_THROW(check_still_same_file(ckpt, id), InputError);
  std::filesystem::remove(ckpt);
  EXPECT_THROW(check_still_same_file(ckpt, id), InputError);
}

TEST(CheckLayerData, DamageIsRefusedNamingTheValue) {
  const int64_t rows = 2, cols = 4, groups = 2;
  LayerData d;
  d.codes = {0, 15, 3, 4, 5, 6, 7, 8};
  d.scales = {0.1f, 0.2f, 0.3f, 0.4f};
  d.zeros = {8, 8, 0, 15};
  d.g_idx = {0, 0, 1, 1};
  d.perm = {3, 2, 1, 0};
  EXPECT_NO_THROW(check_layer_data(d, 4, groups, rows, cols, "w"));
  auto error = [&](LayerData bad) {
    try {
      check_layer_data(bad, 4, groups, rows, cols, "w");
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  LayerData bad = d;
  bad.codes[5] = 255;
  EXPECT_EQ(error(bad), "w: code 255 at [1, 1] is above 15 (4 bits); the checkpoint is damaged");
  bad = d;
  bad.zeros[1] = 1e30f;
  EXPECT_NE(error(bad).find("w: group 0 row 1 has scale 0.2 and zero 1e+30"), std::string::npos);
  bad = d;
  bad.scales[2] = std::numeric_limits<float>::infinity();
  EXPECT_NE(error(bad).find("w: group 1 row 0 has scale inf"), std::string::npos);
  bad = d;
  bad.g_idx[3] = 2;
  EXPECT_EQ(error(bad), "w: g_idx[3] = 2 is outside [0, 2); the checkpoint is damaged");
  bad = d;
  bad.perm[1] = 3;
  EXPECT_NE(error(bad).find("w: perm[1] = 3 is not a permutation of [0, 4)"), std::string::npos);
}

}  // namespace
}  // namespace gptqd
