// The YAML job config: defaults, sweep expansion, run names, the resolved-YAML round trip,
// the example jobs in configs/, and every error with its exact file:line:col and key path.
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "base/check.h"
#include "io/job/job_config.h"
#include "io/job/recorded_setting.h"
#include "tests/test_util.h"

namespace gptqd {
namespace {

// Lines 1-6 of most test files; what a test adds starts on line 7.
const char* const kMinimal =
    "model:\n"
    "  path: m\n"
    "calibration:\n"
    "  text: c.txt\n"
    "output:\n"
    "  checkpoint: o.h5\n";

std::string job(const std::string& extra) { return std::string(kMinimal) + extra; }

std::vector<std::string> names(const JobConfig& j) {
  std::vector<std::string> out;
  for (const auto& q : j.runs) out.push_back(q.name);
  return out;
}

// The error message: parse_job_config must throw InputError, one line.
std::string error_of(const std::string& yaml) {
  try {
    parse_job_config(yaml, "t.yaml");
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    return msg;
  }
  ADD_FAILURE() << "no InputError for:\n" << yaml;
  return "";
}

// where: "line:col: key.path: " (after the file name); what: a part of the rest.
void expect_error(const std::string& yaml, const std::string& where, const std::string& what) {
  const std::string msg = error_of(yaml);
  const std::string prefix = "t.yaml:" + where;
  EXPECT_EQ(msg.substr(0, prefix.size()), prefix) << "message: " << msg << "\nyaml:\n" << yaml;
  EXPECT_NE(msg.find(what, prefix.size()), std::string::npos)
      << "message: " << msg << "\nexpected to contain: " << what;
}

TEST(JobConfigDefaults, MinimalFileFillsEveryDefault) {
  const JobConfig j = parse_job_config(kMinimal, "min.yaml");
  EXPECT_EQ(j.source, "min.yaml");
  EXPECT_EQ(j.model_path, "m");
  EXPECT_EQ(j.calibration.text, "c.txt");
  EXPECT_EQ(j.calibration.tokens, "");
  EXPECT_EQ(j.calibration.nsamples, 128);
  EXPECT_EQ(j.calibration.seqlen, 2048);
  EXPECT_EQ(j.calibration.seed, 0u);
  // The documented defaults, spelled out (not via QuantConfig{}, so a changed initialiser fails).
  EXPECT_EQ(j.quant.bits, 4);
  EXPECT_EQ(j.quant.group_size, 128);
  EXPECT_FALSE(j.quant.sym);
  EXPECT_FALSE(j.quant.act_order);
  EXPECT_FALSE(j.quant.static_groups);
  EXPECT_TRUE(j.quant.true_sequential);
  EXPECT_DOUBLE_EQ(j.quant.damp_percent, 0.01);
  EXPECT_EQ(j.quant.block_size, 128);
  EXPECT_FALSE(j.quant.mse_clip);
  EXPECT_EQ(j.quant.name, "");
  EXPECT_TRUE(j.sweep.empty());
  ASSERT_EQ(j.runs.size(), 1u);
  QuantConfig expected = j.quant;
  expected.name = "w4g128";
  EXPECT_EQ(j.runs[0], expected);
  EXPECT_EQ(j.parallel.stages, 0);
  EXPECT_EQ(j.parallel.device, "auto");
  EXPECT_EQ(j.checkpoint, "o.h5");
  EXPECT_EQ(j.eval.text, "");
  EXPECT_EQ(j.eval.seqlen, 2048);
}

// parallel.sequential_passes: auto by default, every documented value accepted and written back
// in the resolved config, anything else refused at its line and column.
TEST(JobConfigDefaults, SequentialPassesAutoIsTheDefaultAndAccepted) {
  EXPECT_EQ(parse_job_config(kMinimal, "min.yaml").parallel.sequential_passes, "auto");
  for (const std::string v : {"auto", "one", "partial"}) {
    const JobConfig j = parse_job_config(job("parallel: {sequential_passes: " + v + "}\n"), "t");
    EXPECT_EQ(j.parallel.sequential_passes, v);
    EXPECT_EQ(recorded_setting(j.resolved_yaml(), "parallel", "sequential_passes"), v);
  }
  expect_error(job("parallel: {sequential_passes: two}\n"),
               "7:31: parallel.sequential_passes: ", "two is not one of auto, one, partial");
}

// parallel.factorization: auto is the default (coordinator/factorization_auto.h decides), and
// every documented value is accepted as written; the resolved config a checkpoint stores gives
// the value back (io/job/recorded_setting.h), which a resume under auto reuses.
TEST(JobConfigDefaults, FactorizationAutoIsTheDefaultAndAccepted) {
  EXPECT_EQ(parse_job_config(kMinimal, "min.yaml").parallel.factorization, "auto");
  for (const std::string v : {"auto", "replicated", "distributed"}) {
    const JobConfig j = parse_job_config(job("parallel: {factorization: " + v + "}\n"), "t");
    EXPECT_EQ(j.parallel.factorization, v);
    EXPECT_EQ(recorded_setting(j.resolved_yaml(), "parallel", "factorization"), v);
  }
  expect_error(job("parallel: {factorization: fastest}\n"), "7:27: parallel.factorization: ",
               "fastest is not one of auto, replicated, distributed");
  EXPECT_EQ(recorded_setting("parallel: {stages: auto}\n", "parallel", "factorization"), "");
  EXPECT_EQ(recorded_setting("parallel: [1, 2\n", "parallel", "factorization"), "");
  EXPECT_EQ(recorded_setting("", "parallel", "factorization"), "");
}

TEST(JobConfigDefaults, EmptySectionsReadAsDefaults) {
  const JobConfig a = parse_job_config(job("quant:\nsweep:\nparallel:\neval:\n"), "a.yaml");
  const JobConfig b = parse_job_config(job("quant: {}\nsweep: {}\nparallel: {}\neval: {}\n"), "b");
  const JobConfig c = parse_job_config(kMinimal, "c.yaml");
  EXPECT_EQ(a, c);
  EXPECT_EQ(b, c);
}

TEST(JobConfigParse, EveryKeyIsRead) {
  const JobConfig j = parse_job_config(
      "model: {path: /models/bloom}\n"
      "calibration: {tokens: calib.safetensors, nsamples: 7, seqlen: 33, seed: "
      "18446744073709551615}\n"
      "quant: {bits: 3, group_size: -1, sym: true, act_order: True, static_groups: false,\n"
      "        true_sequential: FALSE, damp_percent: 2.5e-2, block_size: 64, mse_clip: true}\n"
      "parallel: {stages: 4, device: cpu}\n"
      "output: {checkpoint: out/x.h5}\n"
      "eval: {text: e.txt, seqlen: 512}\n",
      "all.yaml");
  EXPECT_EQ(j.model_path, "/models/bloom");
  EXPECT_EQ(j.calibration.text, "");
  EXPECT_EQ(j.calibration.tokens, "calib.safetensors");
  EXPECT_EQ(j.calibration.nsamples, 7);
  EXPECT_EQ(j.calibration.seqlen, 33);
  EXPECT_EQ(j.calibration.seed, 18446744073709551615ull);
  EXPECT_EQ(j.quant.bits, 3);
  EXPECT_EQ(j.quant.group_size, -1);
  EXPECT_TRUE(j.quant.sym);
  EXPECT_TRUE(j.quant.act_order);
  EXPECT_FALSE(j.quant.static_groups);
  EXPECT_FALSE(j.quant.true_sequential);
  EXPECT_DOUBLE_EQ(j.quant.damp_percent, 0.025);
  EXPECT_EQ(j.quant.block_size, 64);
  EXPECT_TRUE(j.quant.mse_clip);
  ASSERT_EQ(j.runs.size(), 1u);
  EXPECT_EQ(j.runs[0].name, "w3g-1-sym-act-mse-seq0-damp0.025-bs64");
  EXPECT_EQ(j.parallel.stages, 4);
  EXPECT_EQ(j.parallel.device, "cpu");
  EXPECT_EQ(j.checkpoint, "out/x.h5");
  EXPECT_EQ(j.eval.text, "e.txt");
  EXPECT_EQ(j.eval.seqlen, 512);
}

TEST(JobConfigParse, StagesAutoAndZeroMeanAuto) {
  EXPECT_EQ(parse_job_config(job("parallel: {stages: auto}\n"), "t").parallel.stages, 0);
  EXPECT_EQ(parse_job_config(job("parallel: {stages: 0}\n"), "t").parallel.stages, 0);
  EXPECT_EQ(parse_job_config(job("parallel: {stages: 2}\n"), "t").parallel.stages, 2);
}

TEST(JobConfigParse, NumberForms) {
  auto damp = [](const std::string& v) {
    return parse_job_config(job("quant: {damp_percent: " + v + "}\n"), "t").quant.damp_percent;
  };
  EXPECT_DOUBLE_EQ(damp("0.25"), 0.25);
  EXPECT_DOUBLE_EQ(damp(".25"), 0.25);
  EXPECT_DOUBLE_EQ(damp("+0.25"), 0.25);
  EXPECT_DOUBLE_EQ(damp("2.5e-1"), 0.25);
  EXPECT_DOUBLE_EQ(damp("25E-2"), 0.25);
  EXPECT_DOUBLE_EQ(damp("5.e-1"), 0.5);
  for (const char* bad :
       {"1e", "e3", ".", "1.2.3", "5e+", "--0.1", "0x1p-3", ".inf", "0,5", "1e-2x", "1 2"})
    expect_error(job(std::string("quant:\n  damp_percent: ") + bad + "\n"),
                 "8:17: quant.damp_percent: ", "expected a number");
}

TEST(JobConfigRunName, EncodesEveryNonDefaultSetting) {
  QuantConfig q;
  EXPECT_EQ(run_name(q), "w4g128");
  q.bits = 3;
  q.group_size = -1;
  q.sym = true;
  q.act_order = true;
  EXPECT_EQ(run_name(q), "w3g-1-sym-act");
  q = QuantConfig{};
  q.static_groups = true;
  q.mse_clip = true;
  q.true_sequential = false;
  q.damp_percent = 0.1;
  q.block_size = 32;
  EXPECT_EQ(run_name(q), "w4g128-static-mse-seq0-damp0.1-bs32");
  q = QuantConfig{};
  q.name = "ignored";
  q.bits = 8;
  q.group_size = 32;
  EXPECT_EQ(run_name(q), "w8g32");
}

TEST(JobConfigSweep, CartesianProductFirstKeySlowest) {
  const JobConfig j = parse_job_config(job("sweep:\n"
                                           "  bits: [2, 3, 4]\n"
                                           "  group_size: [-1, 128, 32]\n"),
                                       "t.yaml");
  const std::vector<std::string> expected = {"w2g-1", "w2g128", "w2g32",  "w3g-1", "w3g128",
                                             "w3g32", "w4g-1",  "w4g128", "w4g32"};
  EXPECT_EQ(names(j), expected);
  ASSERT_EQ(j.sweep.size(), 2u);
  EXPECT_EQ(j.sweep[0].key, "bits");
  EXPECT_EQ(j.sweep[0].values, (std::vector<std::string>{"2", "3", "4"}));
  EXPECT_EQ(j.sweep[1].key, "group_size");
  EXPECT_EQ(j.sweep[1].values, (std::vector<std::string>{"-1", "128", "32"}));
  EXPECT_EQ(j.runs[5].bits, 3);
  EXPECT_EQ(j.runs[5].group_size, 32);
  // The base is untouched by the sweep.
  EXPECT_EQ(j.quant.bits, 4);
  EXPECT_EQ(j.quant.group_size, 128);
}

TEST(JobConfigSweep, KeyOrderOfTheFileAndBaseSettingsKept) {
  const JobConfig j = parse_job_config(job("quant: {sym: true, block_size: 64}\n"
                                           "sweep:\n"
                                           "  damp_percent: [0.01, 0.1]\n"
                                           "  act_order: [true, false]\n"
                                           "  bits: [8]\n"),
                                       "t.yaml");
  const std::vector<std::string> expected = {"w8g128-sym-act-bs64", "w8g128-sym-bs64",
                                             "w8g128-sym-act-damp0.1-bs64",
                                             "w8g128-sym-damp0.1-bs64"};
  EXPECT_EQ(names(j), expected);
  for (const auto& q : j.runs) {
    EXPECT_TRUE(q.sym);
    EXPECT_EQ(q.block_size, 64);
    EXPECT_EQ(q.bits, 8);
  }
  EXPECT_DOUBLE_EQ(j.runs[2].damp_percent, 0.1);
  EXPECT_TRUE(j.runs[2].act_order);
}

TEST(JobConfigSweep, EveryQuantKeyCanBeSwept) {
  const JobConfig j = parse_job_config(job("sweep:\n"
                                           "  bits: [2]\n"
                                           "  group_size: [64]\n"
                                           "  sym: [true]\n"
                                           "  act_order: [true]\n"
                                           "  static_groups: [true]\n"
                                           "  true_sequential: [false]\n"
                                           "  damp_percent: [0.5]\n"
                                           "  block_size: [16]\n"
                                           "  mse_clip: [true]\n"),
                                       "t.yaml");
  ASSERT_EQ(j.runs.size(), 1u);
  EXPECT_EQ(j.runs[0].name, "w2g64-sym-act-static-mse-seq0-damp0.5-bs16");
}

TEST(JobConfigSweep, StaticGroupsNeedAGroupSizeInEveryRun) {
  // Fine: the base has -1, but every run gets a positive group size from the sweep.
  const JobConfig j = parse_job_config(
      job("quant: {static_groups: true, group_size: -1}\nsweep: {group_size: [32, 64]}\n"), "t");
  EXPECT_EQ(names(j), (std::vector<std::string>{"w4g32-static", "w4g64-static"}));
}

TEST(JobConfigRoundTrip, ResolvedYamlParsesToTheSameConfig) {
  const std::vector<std::string> jobs = {
      kMinimal,
      job("sweep:\n  bits: [2, 3, 4]\n  group_size: [-1, 128, 32]\n"
          "parallel: {stages: 3, device: cuda}\neval: {text: e.txt, seqlen: 100}\n"),
      job("parallel: {stall_timeout: 12.5}\n"),
      job("parallel: {stall_timeout: 1e5}\n"),
      "model: {path: \"dir with: colon # and hash\"}\n"
      "calibration: {tokens: \"yes\", nsamples: 1, seqlen: 1, seed: 18446744073709551615}\n"
      "quant: {bits: 8, group_size: -1, sym: true, act_order: true, static_groups: false,\n"
      "        true_sequential: false, damp_percent: 0.123456789012345, block_size: 1,\n"
      "        mse_clip: true}\n"
      "sweep: {damp_percent: [1e-5, 0.999], static_groups: [false], mse_clip: [true, false]}\n"
      "output: {checkpoint: \"123\"}\n"
      "eval: {text: \"null\"}\n",
      // Non-ASCII, escaped quotes, a tilde and a tab survive the trip.
      "model: {path: \"caf\xc3\xa9 \\\"quoted\\\" ~\"}\ncalibration: {text: \"a\\tb\"}\n"
      "output: {checkpoint: \"o.h5\"}\n",
  };
  for (const std::string& text : jobs) {
    SCOPED_TRACE(text);
    const JobConfig a = parse_job_config(text, "a.yaml");
    const std::string resolved = a.resolved_yaml();
    SCOPED_TRACE(resolved);
    const JobConfig b = parse_job_config(resolved, "resolved.yaml");
    EXPECT_EQ(a, b);
    EXPECT_EQ(b.source, "resolved.yaml");
    // Stable: resolving again gives the same text (the source in the comment aside).
    EXPECT_EQ(parse_job_config(resolved, "a.yaml").resolved_yaml(), resolved);
  }
}

TEST(JobConfigRoundTrip, ResolvedYamlHasEverySectionAndKey) {
  const JobConfig j = parse_job_config(job("sweep: {bits: [3, 4]}\n"), "src.yaml");
  const std::string y = j.resolved_yaml();
  for (const char* key : {"model:",
                          "path:",
                          "calibration:",
                          "text:",
                          "nsamples: 128",
                          "seqlen: 2048",
                          "seed: 0",
                          "quant:",
                          "bits: 4",
                          "group_size: 128",
                          "sym: false",
                          "act_order: false",
                          "static_groups: false",
                          "true_sequential: true",
                          "damp_percent: 0.01",
                          "block_size: 128",
                          "mse_clip: false",
                          "sweep:",
                          "bits: [3, 4]",
                          "parallel:",
                          "stages: auto",
                          "device: auto",
                          "stall_timeout: auto",
                          "output:",
                          "checkpoint:",
                          "eval:",
                          "# runs: w3g128, w4g128",
                          "src.yaml"})
    EXPECT_NE(y.find(key), std::string::npos) << key << " missing from:\n" << y;
  EXPECT_EQ(y.find("tokens:"), std::string::npos) << y;
}

TEST(JobConfigParallel, StallTimeoutIsAutoOrSeconds) {
  EXPECT_EQ(parse_job_config(kMinimal, "t").parallel.stall_timeout, 0);
  EXPECT_EQ(parse_job_config(job("parallel: {stall_timeout: auto}\n"), "t").parallel.stall_timeout,
            0);
  EXPECT_EQ(parse_job_config(job("parallel: {stall_timeout: 5}\n"), "t").parallel.stall_timeout, 5);
  EXPECT_EQ(parse_job_config(job("parallel: {stall_timeout: 90.5}\n"), "t").parallel.stall_timeout,
            90.5);
  JobConfig a = parse_job_config(kMinimal, "a");
  JobConfig b = a;
  b.parallel.stall_timeout = 60;
  EXPECT_NE(a, b);
}

TEST(JobConfigRoundTrip, EqualityIgnoresSourceOnly) {
  const JobConfig a = parse_job_config(kMinimal, "a.yaml");
  JobConfig b = parse_job_config(kMinimal, "b.yaml");
  EXPECT_EQ(a, b);
  b.runs[0].name = "other";
  EXPECT_NE(a, b);
  b = a;
  b.calibration.seed = 1;
  EXPECT_NE(a, b);
  b = a;
  b.sweep.push_back(SweepAxis{"bits", {"4"}});
  EXPECT_NE(a, b);
}

TEST(JobConfigExamples, EveryConfigInTheRepoParses) {
  for (const char* name : {"configs/tiny-bloom.yaml", "configs/tiny-bloom-sweep.yaml",
                           "configs/bloom-7b1.yaml", "configs/bloom-176b.yaml"}) {
    SCOPED_TRACE(name);
    const JobConfig j = load_job_config(test::source_path(name));
    EXPECT_FALSE(j.runs.empty());
    EXPECT_EQ(parse_job_config(j.resolved_yaml(), "resolved"), j);
  }
}

TEST(JobConfigExamples, TinyBloomIsTheDocumentedJob) {
  const JobConfig j = load_job_config(test::source_path("configs/tiny-bloom.yaml"));
  EXPECT_EQ(j.model_path, "models/tiny-bloom");
  EXPECT_EQ(j.calibration.text, "data/austen-train.txt");
  EXPECT_EQ(j.calibration.nsamples, 32);
  EXPECT_EQ(j.calibration.seqlen, 128);
  EXPECT_EQ(j.calibration.seed, 0u);
  EXPECT_EQ(names(j), (std::vector<std::string>{"w4g128", "w3g128"}));
  EXPECT_EQ(j.checkpoint, "out/tiny-bloom.h5");
  EXPECT_EQ(j.eval.text, "data/austen-eval.txt");
  EXPECT_EQ(j.eval.seqlen, 128);
}

TEST(JobConfigExamples, SweepsNameTheirRunsAsTheirCommentsSay) {
  const JobConfig tiny = load_job_config(test::source_path("configs/tiny-bloom-sweep.yaml"));
  EXPECT_EQ(names(tiny), (std::vector<std::string>{"w2g-1-act", "w2g64-act", "w3g-1-act",
                                                   "w3g64-act", "w4g-1-act", "w4g64-act"}));
  const JobConfig big = load_job_config(test::source_path("configs/bloom-176b.yaml"));
  EXPECT_EQ(names(big), (std::vector<std::string>{"w3g128", "w4g128"}));
  EXPECT_EQ(big.model_path, "configs/bloom-176b");
  const JobConfig mid = load_job_config(test::source_path("configs/bloom-7b1.yaml"));
  EXPECT_EQ(names(mid), (std::vector<std::string>{"w4g128"}));
}

TEST(JobConfigExamples, LoadErrorsNameTheFile) {
  const auto dir = test::scratch_dir("job-config");
  const std::string missing = (dir / "missing.yaml").string();
  try {
    load_job_config(missing);
    ADD_FAILURE() << "no error for a missing file";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(missing + ": cannot read the job file", 0), 0u)
        << e.what();
  }
  try {
    load_job_config(dir.string());
    ADD_FAILURE() << "no error for a directory";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("is a directory"), std::string::npos) << e.what();
  }
  // A file that reads fine but is wrong inside is reported under its path.
  const std::string bad = (dir / "bad.yaml").string();
  std::ofstream(bad) << job("quant:\n  bits: 5\n");
  try {
    load_job_config(bad);
    ADD_FAILURE() << "no error for bits: 5";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), bad + ":8:9: quant.bits: 5 is not one of 2, 3, 4, 8");
  }
}

// ---- errors: exact position and key path -------------------------------------------------

TEST(JobConfigErrors, TheDocumentedExampleWordForWord) {
  EXPECT_EQ(error_of(job("quant:\n  bits: 5\n")),
            "t.yaml:8:9: quant.bits: 5 is not one of 2, 3, 4, 8");
}

TEST(JobConfigErrors, YamlSyntax) {
  expect_error("model:\n  path: m\n bad: 2\n", "3:2: YAML syntax error: ", "end of map not found");
  expect_error(job("quant: {bits: 4\n"), "8:1: YAML syntax error: ", "end of map flow not found");
  expect_error(job("sweep:\n  bits: [2, 3\n"),
               "9:1: YAML syntax error: ", "end of sequence flow not found");
  expect_error("model:\n\tpath: m\n", "2:6: YAML syntax error: ", "illegal map value");
  expect_error("model: path: m\n", "1:12: YAML syntax error: ", "illegal map value");
}

TEST(JobConfigErrors, EmptyFileAndWrongShapeOfDocument) {
  expect_error("", "1:1: (top level): ", "the file is empty");
  expect_error("# only a comment\n\n", "1:1: (top level): ", "the file is empty");
  expect_error("---\n", "1:1: (top level): ", "the file is empty");
  expect_error(std::string(kMinimal) + "---\n" + kMinimal,
               "8:1: (top level): ", "holds 2 YAML documents");
  expect_error("- model\n- output\n", "1:1: (top level): ", "expected a mapping with sections");
  expect_error("just text\n", "1:1: (top level): ", "got the value just text");
}

TEST(JobConfigErrors, UnknownKeysListTheAllowedOnes) {
  expect_error(job("modle: {path: x}\n"), "7:1: modle: ",
               "unknown key; allowed keys: model, calibration, quant, sweep, parallel, output, "
               "eval");
  expect_error(job("quant:\n  bit: 4\n"), "8:3: quant.bit: ",
               "unknown key; allowed keys: bits, group_size, sym, act_order, static_groups, "
               "true_sequential, damp_percent, block_size, mse_clip");
  expect_error(job("sweep:\n  name: [a]\n"), "8:3: sweep.name: ", "allowed keys: bits,");
  expect_error("model:\n  path: m\n  revision: main\n",
               "3:3: model.revision: ", "allowed keys: path");
  expect_error(job("parallel: {stages: 1, gpus: 8}\n"),
               "7:23: parallel.gpus: ", "allowed keys: stages, device");
  expect_error(job("eval: {txt: e}\n"), "7:8: eval.txt: ", "allowed keys: text, seqlen");
  expect_error(job("output2: {}\n"), "7:1: output2: ", "unknown key");
  expect_error("model: {path: m}\ncalibration: {text: c, seqlen: 1, samples: 2}\n",
               "2:35: calibration.samples: ", "allowed keys: text, tokens, nsamples, seqlen, seed");
  expect_error("model: {path: m, ? [a]: 1}\n", "1:20: model: ", "expected a key name, got a list");
  expect_error("model:\n  : 3\n", "2:3: model: ", "expected a key name, got no value");
}

TEST(JobConfigErrors, DuplicateKeys) {
  expect_error(job("quant:\n  bits: 4\n  sym: true\n  bits: 3\n"),
               "10:3: quant.bits: ", "duplicate key (first at line 8, column 3)");
  expect_error(job("model:\n  path: other\n"),
               "7:1: model: ", "duplicate key (first at line 1, column 1)");
  expect_error(job("eval: {seqlen: 1, seqlen: 2}\n"),
               "7:19: eval.seqlen: ", "duplicate key (first at line 7, column 8)");
  expect_error(job("sweep:\n  bits: [2]\n  bits: [3]\n"), "9:3: sweep.bits: ", "duplicate key");
  expect_error("model:\n  path: a\n  \"path\": b\n", "3:3: model.path: ", "duplicate key");
}

TEST(JobConfigErrors, WrongTypes) {
  expect_error(job("quant:\n  bits: \"four\"\n"),
               "8:9: quant.bits: ", "expected an integer, got the quoted string \"four\"");
  expect_error(job("quant:\n  bits: four\n"), "8:9: quant.bits: ", "expected an integer, got four");
  expect_error(job("quant:\n  bits: \"4\"\n"), "8:9: quant.bits: ", "quoted values are strings");
  expect_error(job("quant:\n  bits: 4.0\n"), "8:9: quant.bits: ", "expected an integer, got 4.0");
  expect_error(job("quant:\n  bits: 0x4\n"), "8:9: quant.bits: ", "expected an integer");
  expect_error(job("quant:\n  bits: [4]\n"),
               "8:9: quant.bits: ", "expected an integer, got a list");
  expect_error(job("quant:\n  bits: !!str 4\n"), "8:9: quant.bits: ", "got a value tagged");
  expect_error(job("quant:\n  sym: maybe\n"),
               "8:8: quant.sym: ", "expected true or false, got maybe");
  expect_error(job("quant:\n  act_order: yes\n"),
               "8:14: quant.act_order: ", "expected true or false, got yes");
  expect_error(job("quant:\n  mse_clip: 1\n"), "8:13: quant.mse_clip: ", "expected true or false");
  expect_error(job("quant:\n  damp_percent: one\n"),
               "8:17: quant.damp_percent: ", "expected a number, got one");
  expect_error(job("quant:\n  damp_percent: .nan\n"),
               "8:17: quant.damp_percent: ", "expected a number");
  expect_error(job("quant:\n  damp_percent: {a: 1}\n"),
               "8:17: quant.damp_percent: ", "expected a number, got a mapping");
  expect_error("model: {path: m}\ncalibration: {text: c, nsamples: 1.5}\n",
               "2:34: calibration.nsamples: ", "expected an integer, got 1.5");
  expect_error("model: {path: m}\ncalibration: {text: c, seed: 1e3}\n",
               "2:30: calibration.seed: ", "expected an integer >= 0, got 1e3");
  expect_error(job("parallel: {stages: many}\n"),
               "7:20: parallel.stages: ", "expected an integer, got many");
  expect_error(job("parallel: {device: [cpu]}\n"),
               "7:20: parallel.device: ", "expected one of auto, cuda, cpu, got a list");
  expect_error("model:\n  path: [a, b]\n",
               "2:9: model.path: ", "expected a model directory path, got a list");
  expect_error("model: {path: m}\ncalibration: {text: {a: b}}\n",
               "2:21: calibration.text: ", "expected a text file path, got a mapping");
  expect_error(job("quant: 4\n"), "7:8: quant: ", "expected a mapping with keys bits,");
  expect_error("model: [m]\n", "1:8: model: ", "expected a mapping with keys path, got a list");
  expect_error(job("sweep: [bits]\n"), "7:8: sweep: ", "expected a mapping");
}

TEST(JobConfigErrors, MissingValues) {
  expect_error(job("quant:\n  bits:\n  sym: true\n"),
               "8:3: quant.bits: ", "has no value; expected an integer");
  expect_error(job("quant: {sym: ~}\n"),
               "7:9: quant.sym: ", "has no value; expected true or false");
  expect_error("model:\n  path:\n", "2:3: model.path: ", "has no value");
  expect_error("model:\n  path: \"\"\n", "2:9: model.path: ", "is empty");
  expect_error(job("eval: {text: ''}\n"), "7:14: eval.text: ", "is empty");
}

TEST(JobConfigErrors, OutOfRange) {
  expect_error(job("quant: {bits: 1}\n"), "7:15: quant.bits: ", "1 is not one of 2, 3, 4, 8");
  expect_error(job("quant: {bits: 16}\n"), "7:15: quant.bits: ", "16 is not one of 2, 3, 4, 8");
  expect_error(job("quant: {bits: 99999999999999999999}\n"),
               "7:15: quant.bits: ", "does not fit a 64-bit integer");
  expect_error(job("quant: {group_size: 0}\n"), "7:21: quant.group_size: ",
               "0 is out of range: use -1 (one group per row) or a group size > 0");
  expect_error(job("quant: {group_size: -2}\n"), "7:21: quant.group_size: ", "-2 is out of range");
  expect_error(job("quant: {damp_percent: 0}\n"),
               "7:23: quant.damp_percent: ", "0 is out of range: must be > 0 and < 1");
  expect_error(job("quant: {damp_percent: 1}\n"),
               "7:23: quant.damp_percent: ", "1 is out of range");
  expect_error(job("quant: {damp_percent: -0.01}\n"),
               "7:23: quant.damp_percent: ", "-0.01 is out of range");
  expect_error(job("quant: {damp_percent: 1e999}\n"),
               "7:23: quant.damp_percent: ", "1e999 is out of range");
  expect_error(job("quant: {block_size: 0}\n"),
               "7:21: quant.block_size: ", "0 is out of range: must be > 0");
  expect_error(job("quant: {block_size: -128}\n"), "7:21: quant.block_size: ", "must be > 0");
  expect_error("model: {path: m}\ncalibration: {text: c, nsamples: 0}\n",
               "2:34: calibration.nsamples: ", "0 is out of range: must be > 0");
  expect_error("model: {path: m}\ncalibration: {text: c, nsamples: -5}\n",
               "2:34: calibration.nsamples: ", "-5 is out of range");
  expect_error("model: {path: m}\ncalibration: {text: c, seqlen: 0}\n",
               "2:32: calibration.seqlen: ", "must be > 0");
  expect_error("model: {path: m}\ncalibration: {text: c, seed: -1}\n",
               "2:30: calibration.seed: ", "-1 is out of range: must be >= 0");
  expect_error("model: {path: m}\ncalibration: {text: c, seed: 18446744073709551616}\n",
               "2:30: calibration.seed: ", "does not fit a 64-bit unsigned integer");
  expect_error(job("eval: {seqlen: 0}\n"), "7:16: eval.seqlen: ", "must be > 0");
  expect_error(job("parallel: {stages: -1}\n"), "7:20: parallel.stages: ",
               "-1 is out of range: use auto (or 0) or a number of stages >= 1");
  expect_error(job("parallel: {device: gpu}\n"),
               "7:20: parallel.device: ", "gpu is not one of auto, cuda, cpu");
  expect_error(job("parallel: {device: CUDA}\n"),
               "7:20: parallel.device: ", "CUDA is not one of auto, cuda, cpu");
  expect_error(job("parallel: {stall_timeout: 0.5}\n"), "7:27: parallel.stall_timeout: ",
               "0.5 is out of range: use auto or a number of seconds from 1 to 2592000");
  expect_error(job("parallel: {stall_timeout: -5}\n"),
               "7:27: parallel.stall_timeout: ", "-5 is out of range");
  expect_error(job("parallel: {stall_timeout: 1e9}\n"),
               "7:27: parallel.stall_timeout: ", "1e9 is out of range");
  expect_error(job("parallel: {stall_timeout: never}\n"),
               "7:27: parallel.stall_timeout: ", "expected a number, got never");
}

TEST(JobConfigErrors, StaticGroupsWithOneGroupPerRow) {
  expect_error(job("quant:\n  group_size: -1\n  static_groups: true\n"),
               "9:18: quant.static_groups: ",
               "true needs group_size > 0, but group_size is -1 (set at line 8, column 15)");
  expect_error(job("quant:\n  static_groups: true\n  group_size: -1\n"), "9:15: quant.group_size: ",
               "-1 (one group per row) cannot be used with static_groups: true (set at line 8, "
               "column 18)");
  // The sweep brings the conflict in: blame the list element.
  expect_error(job("quant: {static_groups: true}\nsweep:\n  group_size: [128, -1]\n"),
               "9:21: sweep.group_size[1]: ", "cannot be used with static_groups: true");
  expect_error(job("quant: {group_size: -1}\nsweep:\n  static_groups: [false, true]\n"),
               "9:26: sweep.static_groups[1]: ", "true needs group_size > 0");
}

TEST(JobConfigErrors, MissingRequiredKeys) {
  expect_error("model: {}\ncalibration: {text: c}\noutput: {checkpoint: o}\n",
               "1:1: model.path: ", "missing; give the model directory");
  expect_error("calibration: {text: c}\noutput: {checkpoint: o}\n", "1:1: model.path: ", "missing");
  expect_error(
      "output: {checkpoint: o}\nmodel:\n  path: m\ncalibration: {text: c}\n"
      "parallel: {}\nz: 1\n",
      "6:1: z: ", "unknown key");
  expect_error("model: {path: m}\ncalibration: {text: c}\noutput:\n",
               "3:1: output.checkpoint: ", "missing; give the HDF5 checkpoint file");
  expect_error("model: {path: m}\ncalibration: {text: c}\n", "1:1: output.checkpoint: ", "missing");
  expect_error("model: {path: m}\ncalibration:\n  nsamples: 4\noutput: {checkpoint: o}\n",
               "2:1: calibration: ", "needs one of text");
  expect_error("model: {path: m}\noutput: {checkpoint: o}\n", "1:1: calibration: ",
               "needs one of text (a text file to tokenize) or tokens (pre-tokenized safetensors)");
  expect_error("model: {path: m}\ncalibration:\n  text: a.txt\n  tokens: b.safetensors\n",
               "4:3: calibration.tokens: ",
               "give either calibration.text or calibration.tokens, not both (text is at line 3, "
               "column 3)");
  expect_error("model: {path: m}\ncalibration: {tokens: b, text: a}\n",
               "2:26: calibration.text: ", "not both (tokens is at line 2, column 15)");
}

TEST(JobConfigErrors, SweepShapes) {
  expect_error(job("sweep:\n  bits: 4\n"),
               "8:9: sweep.bits: ", "expected a list of values, e.g. [2, 3, 4], got the value 4");
  expect_error(job("sweep:\n  bits: {a: 4}\n"), "8:9: sweep.bits: ", "got a mapping");
  expect_error(job("sweep:\n  bits: []\n"),
               "8:9: sweep.bits: ", "is an empty list; give at least one value");
  expect_error(job("sweep:\n  bits:\n"), "8:3: sweep.bits: ", "has no value; expected a list");
  expect_error(job("sweep:\n  bits: [2, 5]\n"),
               "8:13: sweep.bits[1]: ", "5 is not one of 2, 3, 4, 8");
  expect_error(job("sweep:\n  sym: [true, maybe]\n"),
               "8:15: sweep.sym[1]: ", "expected true or false, got maybe");
  expect_error(job("sweep:\n  group_size:\n    - 32\n    - 0\n"),
               "10:7: sweep.group_size[1]: ", "0 is out of range");
  expect_error(job("sweep:\n  damp_percent: [0.1, [0.2]]\n"),
               "8:23: sweep.damp_percent[1]: ", "expected a number, got a list");
}

TEST(JobConfigErrors, SweepRunsMustDiffer) {
  expect_error(job("sweep:\n  bits: [4, 3, 4]\n"),
               "8:16: sweep.bits[2]: ", "4 is listed twice (also at [0]); every run must differ");
  expect_error(job("sweep:\n  damp_percent: [0.01, 1e-2]\n"),
               "8:24: sweep.damp_percent[1]: ", "0.01 is listed twice");
  expect_error(job("sweep:\n  sym: [true, True]\n"), "8:15: sweep.sym[1]: ", "listed twice");
}

TEST(JobConfigErrors, SweepTooLarge) {
  // 64 x 64 x 2 = 8192 runs.
  std::string g, b;
  for (int i = 1; i <= 64; ++i) {
    g += (i > 1 ? ", " : "") + std::to_string(i);
    b += (i > 1 ? ", " : "") + std::to_string(i);
  }
  expect_error(
      job("sweep:\n  group_size: [" + g + "]\n  block_size: [" + b + "]\n  sym: [true, false]\n"),
      "7:1: sweep: ", "expands to more than 4096 runs");
}

TEST(JobConfigErrors, HostileValuesStayOnOneLine) {
  const std::string msg = error_of(job("quant:\n  bits: |\n    line one\n    line two\n"));
  EXPECT_NE(msg.find("line one\\nline two"), std::string::npos) << msg;
  const std::string long_value(5000, 'x');
  const std::string msg2 = error_of(job("quant: {sym: " + long_value + "}\n"));
  EXPECT_LT(msg2.size(), 200u) << msg2;
  EXPECT_NE(msg2.find("..."), std::string::npos) << msg2;
}

TEST(JobConfigErrors, HugeNumbersAreErrorsNotCrashes) {
  const std::string digits(1000000, '7');
  expect_error(job("quant: {bits: " + digits + "}\n"),
               "7:15: quant.bits: ", "does not fit a 64-bit integer");
  expect_error(job("quant: {damp_percent: " + digits + "}\n"),
               "7:23: quant.damp_percent: ", "is out of range");
  // A million fraction digits is still a number (7/9), and in range.
  EXPECT_NEAR(
      parse_job_config(job("quant: {damp_percent: 0." + digits + "}\n"), "t").quant.damp_percent,
      7.0 / 9.0, 1e-15);
}

TEST(JobConfigErrors, DeepNestingIsAnErrorNotACrash) {
  const std::string deep = "model: " + std::string(5000, '[') + std::string(5000, ']') + "\n";
  const std::string msg = error_of(deep);
  EXPECT_EQ(msg.rfind("t.yaml:", 0), 0u) << msg;
}

}  // namespace
}  // namespace gptqd
