// The HDF5 checkpoint in one process: layout rules, exact round trips, dequantization against a
// hand computation, resume checks, refusals of foreign files, and the inspect report.
// (Several ranks and crashes: tests/mpi/checkpoint_parallel.sh and checkpoint_crash.sh.)
#include <fcntl.h>
#include <gtest/gtest.h>
#include <mpi.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "base/check.h"
#include "io/checkpoint/checkpoint.h"
#include "tests/checkpoint_fixture.h"
#include "tests/test_util.h"

namespace gptqd {
namespace {

TEST(CheckpointLayout, GroupsIsCeilOrOnePerRow) {
  CkptRunSpec r;
  r.group_size = 4;
  EXPECT_EQ(r.groups(8), 2);
  EXPECT_EQ(r.groups(9), 3);
  EXPECT_EQ(r.groups(3), 1);
  r.group_size = 128;
  EXPECT_EQ(r.groups(14336), 112);
  r.group_size = -1;
  EXPECT_EQ(r.groups(14336), 1);
  r.group_size = 0;
  EXPECT_THROW(r.groups(8), Error);
}

TEST(CheckpointLayout, ValidateRejectsWhatCannotBeStored) {
  EXPECT_NO_THROW(validate_layout(small_layout()));
  auto bad = small_layout();
  bad.layers[1].name = bad.layers[0].name;
  EXPECT_THROW(validate_layout(bad), Error);
  bad = small_layout();
  bad.runs[0].name = "w4/g4";
  EXPECT_THROW(validate_layout(bad), Error);
  bad = small_layout();
  bad.runs[1].bits = 9;
  EXPECT_THROW(validate_layout(bad), Error);
  bad = small_layout();
  bad.layers[0].rows = 0;
  EXPECT_THROW(validate_layout(bad), Error);
  bad = small_layout();
  bad.n_blocks = 0;
  EXPECT_THROW(validate_layout(bad), Error);
}

TEST(CheckpointLayout, DifferenceNamesTheFirstDifference) {
  const CkptLayout a = small_layout();
  CkptLayout b = a;
  EXPECT_EQ(layout_difference(a, b), "");
  std::swap(b.runs[0], b.runs[1]);   // run order does not matter
  b.job_config_yaml = "eval: {}\n";  // nor the config text
  EXPECT_EQ(layout_difference(a, b), "");
  b = a;
  b.fingerprint = "fp-9";
  EXPECT_NE(layout_difference(a, b).find("fingerprint fp-1234 in the file, fp-9 now"),
            std::string::npos);
  b = a;
  b.n_blocks = 4;
  EXPECT_EQ(layout_difference(a, b), "3 blocks in the file, 4 now");
  b = a;
  b.layers[1].cols = 7;
  EXPECT_EQ(layout_difference(a, b), "layer 'self_attention.dense' is 4x6 in the file, 4x7 now");
  b = a;
  b.runs[0].bits = 3;
  EXPECT_EQ(layout_difference(a, b), "run 'w4g4' has bits 4 in the file, 3 now");
  b = a;
  b.runs[1].mse_clip = false;
  EXPECT_EQ(layout_difference(a, b), "run 'w3gall' has mse_clip true in the file, false now");
  b = a;
  b.runs[1].name = "w2gall";
  EXPECT_EQ(layout_difference(a, b), "run 'w2gall' is not in the file");
  b = a;
  b.runs.pop_back();
  EXPECT_EQ(layout_difference(a, b), "run 'w3gall' is in the file but not in the job");
}

TEST_F(CheckpointFile, RoundTripIsExact) {
  const CkptLayout l = small_layout();
  const LayerData qkv = random_layer(l, 0, 0, 0, 12, 11);
  const LayerData dense = random_layer(l, 0, 1, 0, 4, 22);
  const LayerData gall = random_layer(l, 1, 0, 0, 12, 33);
  {
    Checkpoint ck = Checkpoint::create(path_, l, MPI_COMM_SELF);
    EXPECT_FALSE(std::filesystem::exists(path_ + ".creating"));
    ck.write_layer("w4g4", 1, "self_attention.query_key_value", 0, 12, qkv);
    // Three row ranges, out of order, as replicas of a stage would write them.
    const int64_t groups = l.runs[0].groups(6);
    ck.write_layer("w4g4", 1, "self_attention.dense", 3, 4, rows_of(dense, 4, 6, groups, 3, 4));
    ck.write_layer("w4g4", 1, "self_attention.dense", 0, 1, rows_of(dense, 4, 6, groups, 0, 1));
    ck.write_layer("w4g4", 1, "self_attention.dense", 1, 3, rows_of(dense, 4, 6, groups, 1, 3));
    ck.mark_complete("w4g4", 1);
    ck.sync();
    ck.write_layer("w3gall", 2, "self_attention.query_key_value", 0, 12, gall);
    EXPECT_EQ(ck.completion("w4g4"), (std::vector<uint8_t>{0, 1, 0}));
    EXPECT_EQ(ck.completion("w3gall"), (std::vector<uint8_t>{0, 0, 0}));
    expect_same(ck.read_layer("w4g4", 1, "self_attention.dense"), dense);
    ck.close();
    ck.close();  // idempotent
  }
  const Checkpoint rd = Checkpoint::open_read(path_);
  EXPECT_EQ(rd.completion("w4g4"), (std::vector<uint8_t>{0, 1, 0}));
  EXPECT_EQ(rd.completion("w3gall"), (std::vector<uint8_t>{0, 0, 0}));
  expect_same(rd.read_layer("w4g4", 1, "self_attention.query_key_value"), qkv);
  expect_same(rd.read_layer("w4g4", 1, "self_attention.dense"), dense);
  expect_same(rd.read_layer("w3gall", 2, "self_attention.query_key_value"), gall);
  // Stats of a layer never written read as NaN.
  EXPECT_TRUE(std::isnan(rd.read_stats("w4g4", 0, "self_attention.dense").gptq_err));
  EXPECT_EQ(rd.read_stats("w4g4", 1, "self_attention.dense").gptq_loss, dense.stats.gptq_loss);

  const CkptLayout& got = rd.layout();
  EXPECT_EQ(layout_difference(got, l), "");
  EXPECT_EQ(got.runs[0].name, "w4g4");  // order as created
  EXPECT_EQ(got.model_config_json, l.model_config_json);
  EXPECT_EQ(got.job_config_yaml, l.job_config_yaml);
  EXPECT_EQ(got.runs[1].true_sequential, false);
  EXPECT_EQ(got.runs[0].static_groups, true);
  EXPECT_EQ(got.runs[0].damp_percent, 0.05);
  EXPECT_EQ(got.runs[0].block_size, 64);
  EXPECT_FALSE(rd.writer_version().empty());
}

TEST_F(CheckpointFile, DequantizeMatchesHandComputation) {
  CkptLayout l;
  l.n_blocks = 1;
  l.layers = {{"mlp.dense_4h_to_h", 2, 3}};
  CkptRunSpec r;
  r.name = "w2g2";
  r.bits = 2;
  r.group_size = 2;  // 3 columns -> 2 groups
  l.runs = {r};
  LayerData d;
  d.codes = {0, 3, 1,        // row 0
             3, 0, 2};       // row 1
  d.scales = {0.5f, 2.0f,    // group 0: rows 0, 1
              0.25f, 1.0f};  // group 1
  d.zeros = {1.0f, 2.0f,     // group 0
             2.0f, 0.0f};    // group 1
  d.g_idx = {1, 0, 1};
  d.perm = {2, 0, 1};
  d.bias = {0.f, 0.f};
  {
    Checkpoint ck = Checkpoint::create(path_, l, MPI_COMM_SELF);
    ck.write_layer("w2g2", 0, "mlp.dense_4h_to_h", 0, 2, d);
    ck.mark_complete("w2g2", 0);
  }
  // w[r][c] = scales[g_idx[c]][r] * (codes[r][c] - zeros[g_idx[c]][r]), worked by hand:
  // row 0: c0 g1 0.25*(0-2) = -0.5; c1 g0 0.5*(3-1) = 1;  c2 g1 0.25*(1-2) = -0.25
  // row 1: c0 g1 1.0*(3-0) = 3;     c1 g0 2.0*(0-2) = -4; c2 g1 1.0*(2-0) = 2
  const std::vector<float> want = {-0.5f, 1.f, -0.25f, 3.f, -4.f, 2.f};
  EXPECT_EQ(Checkpoint::open_read(path_).dequantize("w2g2", 0, "mlp.dense_4h_to_h"), want);
}

TEST_F(CheckpointFile, ResumeKeepsDataAndRefusesAnotherJob) {
  const CkptLayout l = small_layout();
  const LayerData qkv = random_layer(l, 0, 0, 0, 12, 5);
  {
    Checkpoint ck = Checkpoint::create(path_, l, MPI_COMM_SELF);
    ck.write_layer("w4g4", 0, "self_attention.query_key_value", 0, 12, qkv);
    ck.mark_complete("w4g4", 0);
  }
  {
    Checkpoint ck = Checkpoint::open_resume(path_, l, MPI_COMM_SELF);
    EXPECT_EQ(ck.completion("w4g4"), (std::vector<uint8_t>{1, 0, 0}));
    expect_same(ck.read_layer("w4g4", 0, "self_attention.query_key_value"), qkv);
    ck.mark_complete("w4g4", 2);
  }
  EXPECT_EQ(Checkpoint::open_read(path_).completion("w4g4"), (std::vector<uint8_t>{1, 0, 1}));

  CkptLayout other = l;
  other.fingerprint = "fp-other";
  std::string msg = input_error_of([&] { Checkpoint::open_resume(path_, other, MPI_COMM_SELF); });
  EXPECT_NE(msg.find("was made for a different job"), std::string::npos) << msg;
  EXPECT_NE(msg.find("fingerprint fp-1234 in the file, fp-other now"), std::string::npos) << msg;
  EXPECT_NE(msg.find("delete it"), std::string::npos) << msg;
  EXPECT_NE(msg.find(path_), std::string::npos) << msg;

  other = l;
  other.runs[0].group_size = 8;
  msg = input_error_of([&] { Checkpoint::open_resume(path_, other, MPI_COMM_SELF); });
  EXPECT_NE(msg.find("run 'w4g4' has group_size 4 in the file, 8 now"), std::string::npos) << msg;

  // The refused opens closed the file: it still resumes.
  EXPECT_NO_THROW(Checkpoint::open_resume(path_, l, MPI_COMM_SELF));
  msg = input_error_of(
      [&] { Checkpoint::open_resume((dir_ / "none.h5").string(), l, MPI_COMM_SELF); });
  EXPECT_NE(msg.find("does not exist"), std::string::npos) << msg;
}

TEST_F(CheckpointFile, OpenReadRefusesWhatIsNotOurs) {
  std::string msg = input_error_of([&] { Checkpoint::open_read((dir_ / "none.h5").string()); });
  EXPECT_NE(msg.find("does not exist"), std::string::npos) << msg;

  const std::string text = (dir_ / "notes.h5").string();
  std::ofstream(text) << "just some text, not HDF5\n";
  msg = input_error_of([&] { Checkpoint::open_read(text); });
  EXPECT_NE(msg.find(text + " is not an HDF5 file"), std::string::npos) << msg;

  if (!has_h5py()) GTEST_SKIP() << "no /usr/bin/python3 with h5py to write a foreign HDF5 file";
  const std::string foreign = (dir_ / "foreign.h5").string();
  ASSERT_EQ(std::system(("/usr/bin/python3 -c \"import h5py; f = h5py.File('" + foreign +
                         "', 'w'); f['x'] = [1, 2]; f.attrs['format'] = 'other'\"")
                            .c_str()),
            0);
  msg = input_error_of([&] { Checkpoint::open_read(foreign); });
  EXPECT_NE(msg.find(foreign + " is an HDF5 file but not a gptqd checkpoint"), std::string::npos)
      << msg;

  // Ours, but from a future gptqd.
  { Checkpoint ck = Checkpoint::create(path_, small_layout(), MPI_COMM_SELF); }
  ASSERT_EQ(std::system(("/usr/bin/python3 -c \"import h5py; f = h5py.File('" + path_ +
                         "', 'a'); f.attrs['format_version'] = 7\"")
                            .c_str()),
            0);
  msg = input_error_of([&] { Checkpoint::open_read(path_); });
  EXPECT_NE(msg.find("format_version 7"), std::string::npos) << msg;
}

TEST_F(CheckpointFile, LookupErrorsNameFileAndThing) {
  { Checkpoint ck = Checkpoint::create(path_, small_layout(), MPI_COMM_SELF); }
  const Checkpoint rd = Checkpoint::open_read(path_);
  std::string msg = input_error_of([&] { rd.completion("w9"); });
  EXPECT_NE(msg.find(path_ + " has no run 'w9' (runs: w4g4, w3gall)"), std::string::npos) << msg;
  msg = input_error_of([&] { rd.read_layer("w4g4", 3, "self_attention.dense"); });
  EXPECT_NE(msg.find(path_ + ": block 3 is out of range"), std::string::npos) << msg;
  msg = input_error_of([&] { rd.read_layer("w4g4", -1, "self_attention.dense"); });
  EXPECT_NE(msg.find("block -1 is out of range"), std::string::npos) << msg;
  msg = input_error_of([&] { rd.dequantize("w4g4", 0, "mlp.nope"); });
  EXPECT_NE(msg.find(path_ + " has no layer 'mlp.nope'"), std::string::npos) << msg;
}

TEST_F(CheckpointFile, WritesAreChecked) {
  const CkptLayout l = small_layout();
  Checkpoint ck = Checkpoint::create(path_, l, MPI_COMM_SELF);
  LayerData d = random_layer(l, 0, 1, 0, 4, 9);
  LayerData bad = d;
  bad.codes.pop_back();
  EXPECT_THROW(ck.write_layer("w4g4", 0, "self_attention.dense", 0, 4, bad), Error);
  bad = d;
  bad.perm[0] = bad.perm[1];
  EXPECT_THROW(ck.write_layer("w4g4", 0, "self_attention.dense", 0, 4, bad), Error);
  bad = d;
  bad.g_idx[2] = 2;  // 6 columns in groups of 4: g_idx in {0, 1}
  EXPECT_THROW(ck.write_layer("w4g4", 0, "self_attention.dense", 0, 4, bad), Error);
  EXPECT_THROW(ck.write_layer("w4g4", 0, "self_attention.dense", 2, 6, d), Error);
  EXPECT_THROW(ck.write_layer("w4g4", 3, "self_attention.dense", 0, 4, d), InputError);
  EXPECT_THROW(ck.mark_complete("w5", 0), InputError);
  ck.close();
  EXPECT_THROW(ck.mark_complete("w4g4", 0), Error);
  EXPECT_THROW(ck.sync(), Error);
  const Checkpoint rd = Checkpoint::open_read(path_);
  EXPECT_EQ(rd.completion("w4g4"), (std::vector<uint8_t>{0, 0, 0}));
  Checkpoint moved = Checkpoint::open_read(path_);
  Checkpoint target = std::move(moved);
  EXPECT_THROW(target.write_layer("w4g4", 0, "self_attention.dense", 0, 4, d), Error);
}

TEST_F(CheckpointFile, CreateReplacesAndNeedsADirectory) {
  {
    Checkpoint ck = Checkpoint::create(path_, small_layout(), MPI_COMM_SELF);
    ck.mark_complete("w4g4", 1);
  }
  CkptLayout l2 = small_layout();
  l2.n_blocks = 5;
  { Checkpoint ck = Checkpoint::create(path_, l2, MPI_COMM_SELF); }
  const Checkpoint rd = Checkpoint::open_read(path_);
  EXPECT_EQ(rd.layout().n_blocks, 5);
  EXPECT_EQ(rd.completion("w4g4"), (std::vector<uint8_t>(5, 0)));

  const std::string nowhere = (dir_ / "missing" / "ckpt.h5").string();
  const std::string msg =
      input_error_of([&] { Checkpoint::create(nowhere, small_layout(), MPI_COMM_SELF); });
  EXPECT_NE(msg.find("directory " + (dir_ / "missing").string() + " does not exist"),
            std::string::npos)
      << msg;
}

// A job that created the file and fails before any block is complete leaves no checkpoint; one
// holding a complete block keeps it, also when the mark lands while the discard waits for it.
TEST_F(CheckpointFile, DiscardRemovesOnlyAFileWithNothingComplete) {
  {
    Checkpoint ck = Checkpoint::create(path_, small_layout(), MPI_COMM_SELF);
    EXPECT_TRUE(ck.discard_if_nothing_complete());
    EXPECT_FALSE(std::filesystem::exists(path_));
  }
  {  // Control: a complete block of any run keeps it.
    Checkpoint ck = Checkpoint::create(path_, small_layout(), MPI_COMM_SELF);
    ck.mark_complete("w3gall", 2);
    EXPECT_FALSE(ck.discard_if_nothing_complete());
    EXPECT_TRUE(std::filesystem::exists(path_));
  }
  {  // Another file at the path now (replaced meanwhile): not ours to remove.
    Checkpoint ck = Checkpoint::create(path_, small_layout(), MPI_COMM_SELF);
    const std::string other = (dir_ / "other.h5").string();
    { Checkpoint o = Checkpoint::create(other, small_layout(), MPI_COMM_SELF); }
    std::filesystem::rename(other, path_);
    EXPECT_FALSE(ck.discard_if_nothing_complete());
    EXPECT_TRUE(std::filesystem::exists(path_));
  }
  {  // A mark written while the discard waits (a marker holds the shared lock): counted.
    Checkpoint discarder = Checkpoint::create(path_, small_layout(), MPI_COMM_SELF);
    Checkpoint marker = Checkpoint::open_resume(path_, small_layout(), MPI_COMM_SELF);
    const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::flock(fd, LOCK_SH), 0);
    std::atomic<bool> returned{false};
    bool removed = true;
    std::thread t([&] {
      removed = discarder.discard_if_nothing_complete();
      returned = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    EXPECT_FALSE(returned) << "the discard did not wait for the shared lock";
    // HDF5 is called by one thread at a time: the other waits in flock.
    marker.mark_complete("w4g4", 0);
    ::flock(fd, LOCK_UN);
    t.join();
    ::close(fd);
    EXPECT_FALSE(removed);
    EXPECT_TRUE(std::filesystem::exists(path_));
  }
}

TEST_F(CheckpointFile, ReadableWhileTheWriterHoldsIt) {
  const CkptLayout l = small_layout();
  Checkpoint ck = Checkpoint::create(path_, l, MPI_COMM_SELF);
  const LayerData d = random_layer(l, 1, 1, 0, 4, 3);
  ck.write_layer("w3gall", 0, "self_attention.dense", 0, 4, d);
  ck.mark_complete("w3gall", 0);
  const Checkpoint rd = Checkpoint::open_read(path_);
  EXPECT_EQ(rd.completion("w3gall"), (std::vector<uint8_t>{1, 0, 0}));
  expect_same(rd.read_layer("w3gall", 0, "self_attention.dense"), d);
}

TEST_F(CheckpointFile, H5dumpReadsIt) {
  if (std::system("command -v h5dump >/dev/null 2>&1") != 0) GTEST_SKIP() << "no h5dump";
  {
    Checkpoint ck = Checkpoint::create(path_, small_layout(), MPI_COMM_SELF);
    ck.mark_complete("w4g4", 0);
  }
  const std::string out = (dir_ / "dump.txt").string();
  ASSERT_EQ(std::system(("h5dump -H " + path_ + " > " + out + " 2>&1").c_str()), 0);
  std::ifstream in(out);
  const std::string dump((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(dump.find("DATASET \"codes\""), std::string::npos);
  EXPECT_NE(dump.find("ATTRIBUTE \"format\""), std::string::npos);
  EXPECT_EQ(std::system(("h5dump -d /runs/w4g4/complete " + path_ + " > /dev/null").c_str()), 0);
}

TEST_F(CheckpointFile, InspectReportsSettingsCompletenessAndLayers) {
  const CkptLayout l = small_layout();
  {
    Checkpoint ck = Checkpoint::create(path_, l, MPI_COMM_SELF);
    for (int li = 0; li < 2; ++li) {
      LayerData d = random_layer(l, 0, li, 0, l.layers[li].rows, 40 + li);
      d.stats = {2.5, 0.125 * (li + 1), 0.5, 1.25, 0.01};
      ck.write_layer("w4g4", 0, l.layers[li].name, 0, l.layers[li].rows, d);
    }
    ck.mark_complete("w4g4", 0);
  }
  const std::string report = inspect_checkpoint(path_);
  EXPECT_NE(report.find("model: bloom (family bloom), 3 blocks, hidden 4, heads 2"),
            std::string::npos)
      << report;
  // The layers with their true-sequential groups (a file without layer_groups: one each).
  EXPECT_TRUE(std::regex_search(report, std::regex("\n  group 1  self_attention\\.dense +4 x 6\n")))
      << report;
  EXPECT_NE(report.find("fingerprint: fp-1234"), std::string::npos) << report;
  EXPECT_NE(report.find("run w4g4: bits 4, group_size 4, sym false, act_order true, "
                        "static_groups true, true_sequential true, damp_percent 0.05, "
                        "block_size 64, mse_clip false"),
            std::string::npos)
      << report;
  EXPECT_NE(report.find("blocks complete: 1/3, missing: 1-2"), std::string::npos) << report;
  EXPECT_NE(report.find("blocks complete: 0/3, missing: 0-2"), std::string::npos) << report;
  // The table row of block 0's dense layer: block, layer, shape, gptq_err, rtn_err, loss, seconds.
  EXPECT_TRUE(
      std::regex_search(report, std::regex("\n +0 +self_attention\\.dense +4x6 +2\\.5000e-01 +"
                                           "5\\.0000e-01 +2\\.5000e\\+00 +1\\.25\n")))
      << report;
  EXPECT_FALSE(std::regex_search(report, std::regex("\n +1 +self_attention"))) << report;
}

TEST(CheckpointInspect, BlockListsCollapseRuns) {
  EXPECT_EQ(format_block_list({}), "none");
  EXPECT_EQ(format_block_list({2}), "2");
  EXPECT_EQ(format_block_list({2, 5, 6, 7, 8, 9, 12}), "2, 5-9, 12");
  EXPECT_EQ(format_block_list({0, 1}), "0-1");
}

}  // namespace
}  // namespace gptqd
