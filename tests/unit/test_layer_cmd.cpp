// `gptqd layer` as a library call: argument parsing, the output tensor
// contract, agreement with the PyTorch reference on a fixture of
// tests/fixtures/gptq/, and a clear error for every kind of bad input.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "commands/command_line.h"
#include "commands/layer_cmd.h"
#include "io/model/safetensors.h"
#include "base/check.h"
#include "tests/test_util.h"

namespace gptqd {
namespace {

std::string fixture(const std::string& file) {
  return test::source_path("tests/fixtures/gptq/" + file);
}

template <typename T>
std::vector<T> read_raw(const SafetensorsFile& f, const std::string& name, DType want) {
  const TensorInfo* t = f.find(name);
  if (!t) {
    ADD_FAILURE() << "no tensor " << name;
    return {};
  }
  EXPECT_EQ(t->dtype, want) << name;
  std::vector<T> v(t->nbytes() / sizeof(T));
  if (!v.empty()) std::memcpy(v.data(), f.data(*t), t->nbytes());
  return v;
}

// Expects InputError whose message contains every one of `parts`.
template <typename Fn>
void expect_input_error(Fn&& fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "no InputError; expected one mentioning " << parts.at(0);
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "not one line: " << msg;
    for (const auto& p : parts)
      EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' in: " << msg;
  }
}

// ---- arguments ---------------------------------------------------------------------

TEST(LayerArgs, EveryFlag) {
  const LayerOptions o =
      parse_layer_args({"--in", "a.safetensors", "--out", "b.safetensors", "--bits", "3",
                        "--group-size", "64", "--sym", "--act-order", "--static-groups", "--damp",
                        "0.05", "--block-size", "32", "--mse-clip", "--threads", "3"});
  EXPECT_EQ(o.in_path, "a.safetensors");
  EXPECT_EQ(o.out_path, "b.safetensors");
  EXPECT_EQ(o.gptq.bits, 3);
  EXPECT_EQ(o.gptq.group_size, 64);
  EXPECT_TRUE(o.gptq.sym);
  EXPECT_TRUE(o.gptq.act_order);
  EXPECT_TRUE(o.gptq.static_groups);
  EXPECT_DOUBLE_EQ(o.gptq.damp_percent, 0.05);
  EXPECT_EQ(o.gptq.block_size, 32);
  EXPECT_TRUE(o.gptq.mse_clip);
  EXPECT_EQ(o.threads, 3);
}

TEST(LayerArgs, DefaultsAreTheReference) {
  const LayerOptions o =
      parse_layer_args({"--in", "a", "--out", "b", "--bits", "4", "--group-size", "-1"});
  EXPECT_EQ(o.gptq.group_size, -1);
  EXPECT_FALSE(o.gptq.sym || o.gptq.act_order || o.gptq.static_groups || o.gptq.mse_clip);
  EXPECT_DOUBLE_EQ(o.gptq.damp_percent, 0.01);
  EXPECT_EQ(o.gptq.block_size, 128);
  EXPECT_EQ(o.threads, 0);
}

TEST(LayerArgs, BadArgumentsNameTheFlag) {
  const std::vector<std::string> base = {"--in",   "a", "--out",        "b",
                                         "--bits", "4", "--group-size", "128"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> v = base;
    v.insert(v.end(), extra.begin(), extra.end());
    return v;
  };
  auto expect = [&](const std::vector<std::string>& args, const std::vector<std::string>& parts) {
    SCOPED_TRACE(parts.at(0));
    expect_input_error([&] { parse_layer_args(args); }, parts);
  };
  expect({"--in", "a", "--out", "b", "--bits", "5", "--group-size", "128"}, {"--bits", "5"});
  expect({"--in", "a", "--out", "b", "--bits", "four", "--group-size", "128"}, {"--bits", "four"});
  expect({"--in", "a", "--out", "b", "--bits", "4", "--group-size", "0"}, {"--group-size", "0"});
  expect({"--in", "a", "--out", "b", "--bits", "4", "--group-size", "-2"}, {"--group-size"});
  expect(with({"--block-size", "0"}), {"--block-size", "0"});
  expect(with({"--damp", "1"}), {"--damp", "1"});
  expect(with({"--damp", "-0.01"}), {"--damp"});
  expect(with({"--damp", "nan"}), {"--damp"});
  expect(with({"--damp", "1e-2x"}), {"--damp", "1e-2x"});
  expect(with({"--threads", "0"}), {"--threads"});
  expect(with({"--threads"}), {"--threads", "needs a value"});
  expect(with({"--frobnicate"}), {"--frobnicate"});
  expect(with({"--sym", "--sym"}), {"--sym", "given more than once"});
  expect(with({"--bits", "3"}), {"--bits", "given more than once"});
  expect(with({"extra"}), {"unexpected argument 'extra'"});
  expect(with({"--frobnicate"}), {"unknown option '--frobnicate'"});
  expect(with({"--block-size", "010x"}), {"--block-size", "'010x' is not an integer"});
  expect({"--in", "a", "--bits", "4", "--group-size", "128"}, {"missing --out"});
  expect({"--in", "a", "--out", "b", "--group-size", "128"}, {"--bits"});
  expect({"--in", "a", "--out", "b", "--bits", "4"}, {"--group-size"});
  expect({"--out", "b", "--bits", "4", "--group-size", "4"}, {"--in"});
  expect({"--in", "a", "--out", "b", "--bits", "4", "--group-size", "-1", "--static-groups"},
         {"--static-groups"});
}

TEST(LayerArgs, NumbersAreDecimal) {
  // CLI11 alone would read 010 as octal 8.
  const LayerOptions o = parse_layer_args(
      {"--in", "a", "--out", "b", "--bits", "4", "--group-size", "010", "--damp=0.5"});
  EXPECT_EQ(o.gptq.group_size, 10);
  EXPECT_DOUBLE_EQ(o.gptq.damp_percent, 0.5);
}

TEST(LayerArgs, HelpBeforeAnyCheck) {
  for (const char* h : {"--help", "-h"}) {
    try {
      parse_layer_args({"--bits", "9", h});
      ADD_FAILURE() << "no HelpRequest for " << h;
    } catch (const HelpRequest& e) {
      const std::string text = e.what();
      EXPECT_EQ(text.rfind("usage: gptqd layer --in L.safetensors", 0), 0u) << text;
      for (const char* flag : {"--static-groups", "--mse-clip", "--threads T", "-h, --help"})
        EXPECT_NE(text.find(flag), std::string::npos) << flag << " in:\n" << text;
    }
  }
}

TEST(LayerCmd, ExitCodes) {
  EXPECT_EQ(cmd_layer({"--help"}, MPI_COMM_WORLD), 0);
  EXPECT_EQ(cmd_layer({"-h"}, MPI_COMM_WORLD), 0);
  EXPECT_EQ(cmd_layer({"--bits", "9"}, MPI_COMM_WORLD), 1);
  EXPECT_EQ(cmd_layer({"--in", "/nonexistent.safetensors", "--out", "/tmp/x.safetensors", "--bits",
                       "4", "--group-size", "128"},
                      MPI_COMM_WORLD),
            1);
}

// ---- against the reference -------------------------------------------------------------

struct Compared {
  double identical = 0, loss_rel = 0;
};

// Runs quantize_layer_file on `problem` with the settings of `ref_case` and
// checks the whole output contract.
Compared run_and_check(const std::string& problem, const std::string& ref_case, LayerOptions opt) {
  const auto dir = test::scratch_dir("layer-" + ref_case);
  opt.in_path = fixture("problem_" + problem + ".safetensors");
  opt.out_path = (dir / "out.safetensors").string();
  opt.threads = 2;
  const LayerReport rep = quantize_layer_file(opt);

  const SafetensorsFile in = SafetensorsFile::open(opt.in_path);
  const SafetensorsFile out = SafetensorsFile::open(opt.out_path);
  const SafetensorsFile ref = SafetensorsFile::open(fixture("case_" + ref_case + ".safetensors"));
  const int64_t rows = in.find("weight")->shape[0], cols = in.find("weight")->shape[1];
  const int64_t gs = opt.gptq.group_size;
  const int64_t groups = gs == -1 ? 1 : (cols + gs - 1) / gs;
  EXPECT_EQ(rep.rows, rows);
  EXPECT_EQ(rep.cols, cols);
  EXPECT_EQ(rep.tokens, in.find("inputs")->shape[0]);

  EXPECT_EQ(out.find("codes")->shape, (std::vector<int64_t>{rows, cols}));
  EXPECT_EQ(out.find("scales")->shape, (std::vector<int64_t>{groups, rows}));
  EXPECT_EQ(out.find("zeros")->shape, (std::vector<int64_t>{groups, rows}));
  EXPECT_EQ(out.find("g_idx")->shape, (std::vector<int64_t>{cols}));
  EXPECT_EQ(out.find("perm")->shape, (std::vector<int64_t>{cols}));
  EXPECT_EQ(out.find("dequant")->shape, (std::vector<int64_t>{rows, cols}));
  EXPECT_EQ(out.find("loss")->shape, (std::vector<int64_t>{1}));
  const auto codes = read_raw<uint8_t>(out, "codes", DType::U8);
  const auto scales = read_raw<float>(out, "scales", DType::F32);
  const auto zeros = read_raw<float>(out, "zeros", DType::F32);
  const auto g_idx = read_raw<int32_t>(out, "g_idx", DType::I32);
  const auto perm = read_raw<int32_t>(out, "perm", DType::I32);
  const auto dequant = read_raw<float>(out, "dequant", DType::F32);
  const float loss = read_raw<float>(out, "loss", DType::F32).at(0);
  EXPECT_FLOAT_EQ(loss, static_cast<float>(rep.loss));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t gi = g_idx[c] * rows + r;
      EXPECT_EQ(dequant[r * cols + c], scales[gi] * (float(codes[r * cols + c]) - zeros[gi]));
    }
  if (in.find("bias")) {
    EXPECT_EQ(read_raw<float>(out, "bias", DType::F32), in.read_f32("bias"));
  } else {
    EXPECT_EQ(out.find("bias"), nullptr);
  }
  EXPECT_EQ(out.metadata().at("bits"), std::to_string(opt.gptq.bits));
  EXPECT_LT(rep.gptq_err, rep.rtn_err);
  EXPECT_GT(rep.gptq_err, 0);

  // The reference's outputs for the same settings.
  const auto ref_codes = read_raw<uint8_t>(ref, "codes", DType::U8);
  EXPECT_EQ(g_idx, read_raw<int32_t>(ref, "g_idx", DType::I32));
  EXPECT_EQ(perm, read_raw<int32_t>(ref, "perm", DType::I32));
  Compared cmp;
  int64_t same = 0;
  for (size_t i = 0; i < codes.size(); ++i) same += codes[i] == ref_codes.at(i);
  cmp.identical = double(same) / double(codes.size());
  const double ref_loss = read_raw<float>(ref, "loss", DType::F32).at(0);
  cmp.loss_rel = std::fabs(rep.loss - ref_loss) / ref_loss;
  const std::string summary = layer_summary(opt, rep);
  EXPECT_NE(summary.find(fmt::format("[{}, {}]", rows, cols)), std::string::npos) << summary;
  EXPECT_NE(summary.find("RTN"), std::string::npos) << summary;
  std::printf("[ measured ] gptqd layer on %s as %s: codes identical %.4f, loss %.2e rel\n%s\n",
              problem.c_str(), ref_case.c_str(), cmp.identical, cmp.loss_rel, summary.c_str());
  std::filesystem::remove_all(dir);
  return cmp;
}

// BF16 weight, F16 inputs, dead features, act_order; tokens > in (errors from H).
TEST(LayerFile, MatchesReferenceOnBf16Problem) {
  LayerOptions opt = parse_layer_args(
      {"--in", "x", "--out", "y", "--bits", "4", "--group-size", "128", "--act-order"});
  const Compared c = run_and_check("p70x200", "w4_g128_act", opt);
  EXPECT_GE(c.identical, 0.99);
  EXPECT_LE(c.loss_rel, 0.01);
}

// A bias is copied; a group larger than the row.
TEST(LayerFile, MatchesReferenceWithBias) {
  LayerOptions opt =
      parse_layer_args({"--in", "x", "--out", "y", "--bits", "4", "--group-size", "128"});
  const Compared c = run_and_check("p48x80", "w4_g128_over_cols", opt);
  EXPECT_GE(c.identical, 0.99);
  EXPECT_LE(c.loss_rel, 0.01);
}

// Fewer tokens than features (errors from the inputs) and damp 0 retried.
TEST(LayerFile, MatchesReferenceOnSingularHessian) {
  LayerOptions opt = parse_layer_args(
      {"--in", "x", "--out", "y", "--bits", "4", "--group-size", "32", "--damp", "0"});
  const Compared c = run_and_check("lowrank", "w4_g32_damp0", opt);
  EXPECT_GE(c.identical, 0.99);
  EXPECT_LE(c.loss_rel, 0.01);
}

// ---- bad files ------------------------------------------------------------------------------

class LayerBadFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::scratch_dir("layer-bad");
    w_ = test::random_vector(6 * 10, 1);
    x_ = test::random_vector(20 * 10, 2);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Writes `tensors` as the input and expects an InputError mentioning `parts`.
  void expect(const std::vector<TensorOut>& tensors, const std::vector<std::string>& parts) {
    const std::string in = (dir_ / "in.safetensors").string();
    write_safetensors(in, tensors);
    LayerOptions opt = parse_layer_args({"--in", in, "--out", (dir_ / "out.safetensors").string(),
                                         "--bits", "4", "--group-size", "4", "--threads", "1"});
    std::vector<std::string> all = parts;
    all.push_back(in);
    SCOPED_TRACE(parts.at(0));
    expect_input_error([&] { quantize_layer_file(opt); }, all);
    EXPECT_FALSE(std::filesystem::exists(dir_ / "out.safetensors"));
  }

  TensorOut weight() { return {"weight", DType::F32, {6, 10}, w_.data()}; }
  TensorOut inputs() { return {"inputs", DType::F32, {20, 10}, x_.data()}; }

  std::filesystem::path dir_;
  std::vector<float> w_, x_;
};

TEST_F(LayerBadFile, MissingTensors) {
  expect({inputs()}, {"'weight'"});
  expect({weight()}, {"'inputs'"});
}

TEST_F(LayerBadFile, WrongRanksAndShapes) {
  expect({{"weight", DType::F32, {60}, w_.data()}, inputs()}, {"'weight'", "[60]"});
  expect({weight(), {"inputs", DType::F32, {2, 10, 10}, x_.data()}}, {"'inputs'", "[2, 10, 10]"});
  expect({weight(), {"inputs", DType::F32, {25, 8}, x_.data()}},
         {"'inputs'", "[25, 8]", "[6, 10]"});
  expect({weight(), {"inputs", DType::F32, {0, 10}, nullptr}}, {"'inputs'", "no tokens"});
  expect({{"weight", DType::F32, {0, 10}, nullptr}, inputs()}, {"'weight'", "empty"});
  expect({weight(), inputs(), {"bias", DType::F32, {5}, w_.data()}}, {"'bias'", "[5]"});
}

TEST_F(LayerBadFile, WrongDtype) {
  std::vector<int32_t> ints(60, 1);
  expect({{"weight", DType::I32, {6, 10}, ints.data()}, inputs()}, {"'weight'", "I32"});
}

TEST_F(LayerBadFile, NonFiniteValuesNameTensorAndPlace) {
  w_[2 * 10 + 7] = NAN;
  expect({weight(), inputs()}, {"'weight'", "[2, 7]"});
  w_[2 * 10 + 7] = 0.5f;
  x_[13 * 10 + 1] = -INFINITY;
  expect({weight(), inputs()}, {"'inputs'", "[13, 1]"});
  x_[13 * 10 + 1] = 0.5f;
  std::vector<float> b(6, 0.0f);
  b[4] = NAN;
  expect({weight(), inputs(), {"bias", DType::F32, {6}, b.data()}}, {"'bias'", "[4]"});
}

// Finite inputs whose Hessian overflows fp32 are an error naming the layer.
TEST_F(LayerBadFile, HessianOverflowNamesTheLayer) {
  x_[3] = 3e30f;
  const std::string in = (dir_ / "in.safetensors").string();
  write_safetensors(in, {weight(), inputs()});
  LayerOptions opt = parse_layer_args(
      {"--in", in, "--out", (dir_ / "o.safetensors").string(), "--bits", "4", "--group-size", "4"});
  try {
    quantize_layer_file(opt);
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(in), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("Hessian"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace gptqd
