// Issue 20: the output rule (io/files/output_path.h, staged_file.h) and its use by the
// checkpoint's lock and create. Each refusal beside an accepted twin, so a check that refused
// everything (or nothing) fails here. The commands' end-to-end cases are
// tests/cli/output_paths.sh.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "base/check.h"
#include "io/checkpoint/checkpoint.h"
#include "io/checkpoint/checkpoint_guard.h"
#include "io/files/output_path.h"
#include "io/files/staged_file.h"
#include "tests/checkpoint_fixture.h"
#include "tests/test_util.h"

namespace gptqd {
namespace {

namespace fs = std::filesystem;

class OutputPath : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::scratch_dir(std::string("output-path-") +
                             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    model_ = dir_ / "model";
    fs::create_directories(model_);
    write(model_ / "config.json", "{}");
    write(model_ / "model.safetensors", "weights");
    inputs_ = model_directory_inputs(model_.string());
  }
  void TearDown() override { fs::remove_all(dir_); }
  static void write(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }
  static std::string read(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  // The message of the InputError check_output_file throws, or "" when it accepts.
  std::string file_error(const fs::path& p) const {
    try {
      check_output_file("out", p.string(), inputs_);
    } catch (const InputError& e) {
      return e.what();
    }
    return "";
  }
  std::string dir_error(const fs::path& p) const {
    try {
      check_output_directory("out", p.string(), inputs_);
    } catch (const InputError& e) {
      return e.what();
    }
    return "";
  }
  fs::path dir_, model_;
  std::vector<NamedInput> inputs_;
};

bool has(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

TEST_F(OutputPath, InputsAreRefusedByIdentityWhateverTheSpelling) {
  fs::create_hard_link(model_ / "model.safetensors", dir_ / "hard.bin");
  fs::create_symlink(model_ / "config.json", dir_ / "soft.json");
  EXPECT_TRUE(has(file_error(model_ / "." / "model.safetensors"), "is the model file")) << "dot";
  EXPECT_TRUE(has(file_error(dir_ / "hard.bin"), "is the model file"));
  EXPECT_TRUE(has(file_error(dir_ / "soft.json"), "is the model file"));
  // Controls: a new path, and an existing file that is no input, are accepted.
  EXPECT_EQ(file_error(dir_ / "new.bin"), "");
  write(dir_ / "old.bin", "an earlier output");
  EXPECT_EQ(file_error(dir_ / "old.bin"), "");
}

TEST_F(OutputPath, NothingIsWrittenInsideAnInputDirectory) {
  fs::create_directory_symlink(model_, dir_ / "alias");
  const std::string e = file_error(model_ / "new.bin");
  EXPECT_TRUE(has(e, "is inside the model directory '" + model_.string() + "'")) << e;
  EXPECT_TRUE(has(file_error(model_ / "sub" / "deeper" / "new.bin"), "is inside the model"));
  EXPECT_TRUE(has(file_error(dir_ / "alias" / "new.bin"), "is inside the model"));
  EXPECT_TRUE(has(dir_error(model_), "is the model directory"));
  EXPECT_TRUE(has(dir_error(model_ / "."), "is the model directory"));
  EXPECT_TRUE(has(dir_error(model_ / "gptq"), "is inside the model directory"));
  // Controls: beside the model, and `..` out of it, are accepted.
  EXPECT_EQ(file_error(dir_ / "new.bin"), "");
  EXPECT_EQ(file_error(model_ / ".." / "new.bin"), "");
  EXPECT_EQ(dir_error(dir_ / "gptq"), "");
  EXPECT_EQ(dir_error(model_ / ".." / "gptq"), "");
}

TEST_F(OutputPath, SymbolicLinksAreRefusedEvenToHarmlessTargets) {
  write(dir_ / "target.json", "mine");
  fs::create_symlink(dir_ / "target.json", dir_ / "link.json");
  fs::create_directory(dir_ / "real-out");
  fs::create_directory_symlink(dir_ / "real-out", dir_ / "link-out");
  const std::string e = file_error(dir_ / "link.json");
  EXPECT_TRUE(has(e, "is a symbolic link (to '" + (dir_ / "target.json").string() + "')")) << e;
  EXPECT_TRUE(has(dir_error(dir_ / "link-out"), "is a symbolic link"));
  EXPECT_THROW(refuse_symlink("out", (dir_ / "link.json").string()), InputError);
  fs::create_symlink(dir_ / "nowhere", dir_ / "dangling");
  EXPECT_TRUE(has(file_error(dir_ / "dangling"), "is a symbolic link"));
  EXPECT_EQ(read(dir_ / "target.json"), "mine");
  // Controls: the targets themselves are fine.
  EXPECT_EQ(file_error(dir_ / "target.json"), "");
  EXPECT_EQ(dir_error(dir_ / "real-out"), "");
  EXPECT_NO_THROW(refuse_symlink("out", (dir_ / "target.json").string()));
}

TEST_F(OutputPath, OnlyRegularFilesAndDirectoriesAreReplaced) {
  ASSERT_EQ(::mkfifo((dir_ / "fifo").c_str(), 0644), 0);
  EXPECT_TRUE(has(file_error(dir_ / "fifo"), "is not a regular file"));
  EXPECT_TRUE(has(file_error(dir_), "is a directory"));
  write(dir_ / "plain", "x");
  EXPECT_TRUE(has(dir_error(dir_ / "plain"), "exists and is not a directory"));
  EXPECT_EQ(file_error(dir_ / "plain"), "");  // control
}

TEST_F(OutputPath, StagedFileAppearsWholeOrNotAtAll) {
  const fs::path p = dir_ / "out.bin";
  write(p, "old");
  {
    StagedFile f = StagedFile::create("out", p.string());
    f.write("new contents");
    f.finish();
    EXPECT_EQ(read(p), "old");  // nothing at the path before commit
    EXPECT_EQ(fs::path(f.temp_path()).parent_path(), dir_);
  }  // dropped without commit: the temporary file goes
  EXPECT_EQ(read(p), "old");
  size_t entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_)) ++entries;
  EXPECT_EQ(entries, 2u);  // model/ and out.bin
  StagedFile f = StagedFile::create("out", p.string());
  f.write("new contents");
  f.commit();
  EXPECT_EQ(read(p), "new contents");  // control: a commit does replace it
}

TEST_F(OutputPath, StagedFileNeverWritesThroughALink) {
  write(dir_ / "victim", "precious");
  fs::create_symlink(dir_ / "victim", dir_ / "out.bin");
  EXPECT_THROW(StagedFile::create("out", (dir_ / "out.bin").string()), InputError);
  // A link planted after the create is refused at the commit.
  StagedFile f = StagedFile::create("out", (dir_ / "later.bin").string());
  f.write("data");
  fs::create_symlink(dir_ / "victim", dir_ / "later.bin");
  EXPECT_THROW(f.commit(), InputError);
  EXPECT_EQ(read(dir_ / "victim"), "precious");
  EXPECT_TRUE(fs::is_symlink(dir_ / "later.bin"));
}

TEST_F(OutputPath, LockFileLinkIsRefusedAndItsTargetKept) {
  const std::string ckpt = (dir_ / "job.h5").string();
  write(dir_ / "victim", "precious");
  fs::create_symlink(dir_ / "victim", ckpt + ".lock");
  try {
    CheckpointLock::acquire(ckpt);
    ADD_FAILURE() << "lock taken through a symbolic link";
  } catch (const InputError& e) {
    EXPECT_TRUE(has(e.what(), "lock file '" + ckpt + ".lock' is a symbolic link")) << e.what();
  }
  EXPECT_EQ(read(dir_ / "victim"), "precious");
  fs::remove(ckpt + ".lock");
  EXPECT_TRUE(CheckpointLock::acquire(ckpt).held());  // control
}

TEST_F(OutputPath, CheckpointCreateRefusesALinkAtItsTemporaryName) {
  const std::string ckpt = (dir_ / "job.h5").string();
  write(dir_ / "victim", "precious");
  fs::create_symlink(dir_ / "victim", ckpt + ".creating");
  try {
    Checkpoint::create(ckpt, small_layout(), MPI_COMM_SELF);
    ADD_FAILURE() << "created through a symbolic link";
  } catch (const InputError& e) {
    EXPECT_TRUE(has(e.what(), "temporary file '" + ckpt + ".creating' is a symbolic link"))
        << e.what();
  }
  EXPECT_EQ(read(dir_ / "victim"), "precious");
  EXPECT_FALSE(fs::exists(ckpt));
  fs::remove(ckpt + ".creating");
  Checkpoint::create(ckpt, small_layout(), MPI_COMM_SELF).close();  // control
  EXPECT_TRUE(fs::exists(ckpt));
}

}  // namespace
}  // namespace gptqd
