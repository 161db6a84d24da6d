// The command line as library calls: each command's parse function, its help text, the command
// list of `gptqd --help`, --version, and run_cli's exit codes for help and bad arguments.
#include <gtest/gtest.h>
#include <mpi.h>

#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "base/check.h"
#include "commands/cli.h"
#include "commands/command_line.h"
#include "commands/eval_cmd.h"
#include "commands/layer_cmd.h"
#include "commands/plan_cmd.h"

namespace gptqd {
namespace {

// The InputError message of fn(), which must throw one.
template <typename Fn>
std::string input_error(Fn&& fn) {
  try {
    fn();
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "not one line: " << msg;
    return msg;
  }
  ADD_FAILURE() << "no InputError";
  return "";
}

// The help text fn() throws as a HelpRequest.
template <typename Fn>
std::string help_text(Fn&& fn) {
  try {
    fn();
  } catch (const HelpRequest& h) {
    return h.what();
  }
  ADD_FAILURE() << "no HelpRequest";
  return "";
}

TEST(CliParse, Quantize) {
  const QuantizeOptions o = parse_quantize_args({"job.yaml", "--restart", "--threads", "3"});
  EXPECT_EQ(o.config_path, "job.yaml");
  EXPECT_TRUE(o.restart);
  EXPECT_EQ(o.threads, 3);
  const QuantizeOptions d = parse_quantize_args({"job.yaml"});
  EXPECT_FALSE(d.restart);
  EXPECT_EQ(d.threads, 0);
  EXPECT_EQ(input_error([] { parse_quantize_args({}); }),
            "quantize: missing CONFIG; usage: gptqd quantize CONFIG [--restart] [--threads N]");
  EXPECT_EQ(input_error([] {
              parse_quantize_args({"job.yaml", "--resume"});
            }),
            "quantize: unknown option '--resume' (gptqd quantize --help lists the options)");
  EXPECT_EQ(input_error([] {
              parse_quantize_args({"job.yaml", "--threads", "-1"});
            }),
            "--threads: -1 is out of range [0, 4096]");
}

TEST(CliParse, Eval) {
  const EvalOptions o = parse_eval_args({"--run", "w4g128", "job.yaml", "--threads=2"});
  EXPECT_EQ(o.config_path, "job.yaml");
  EXPECT_EQ(o.run, "w4g128");
  EXPECT_EQ(o.threads, 2);
  EXPECT_EQ(input_error([] {
              parse_eval_args({"job.yaml", "--run"});
            }),
            "eval: --run needs a value");
  EXPECT_EQ(
      input_error([] {
        parse_eval_args({"a.yaml", "b.yaml"});
      }),
      "eval: unexpected argument 'b.yaml'; usage: gptqd eval CONFIG [--run NAME] [--threads N]");
  // An unknown option is reported before the missing CONFIG it may have caused.
  EXPECT_EQ(input_error([] { parse_eval_args({"--help-me"}); }),
            "eval: unknown option '--help-me' (gptqd eval --help lists the options)");
  // A control character in an argument is escaped: the error stays one line.
  EXPECT_EQ(input_error([] {
              parse_eval_args({"job.yaml", "--x\ny"});
            }),
            "eval: unknown option '--x\\x0ay' (gptqd eval --help lists the options)");
}

TEST(CliParse, Inspect) {
  EXPECT_EQ(parse_inspect_args({"ckpt.h5"}).path, "ckpt.h5");
  EXPECT_FALSE(parse_inspect_args({"ckpt.h5"}).verify);
  EXPECT_TRUE(parse_inspect_args({"ckpt.h5", "--verify"}).verify);
  EXPECT_TRUE(parse_inspect_args({"--verify", "ckpt.h5"}).verify);
  EXPECT_EQ(input_error([] { parse_inspect_args({}); }),
            "inspect: missing FILE; usage: gptqd inspect FILE [--verify]");
  // A NUL in a path (argv cannot hold one, a library caller's string can): refused, the whole
  // argument shown escaped, not cut at the NUL as the OS would open it.
  EXPECT_EQ(input_error([] {
              parse_inspect_args({std::string("ck\0tail.h5", 10), "--verify"});
            }),
            "inspect: argument 1 'ck\\x00tail.h5' holds a NUL byte (\\x00 at byte 2); a path "
            "cannot contain one");
  // Control: the same argument without the NUL is read as given.
  EXPECT_EQ(parse_inspect_args({std::string("ck_tail.h5"), "--verify"}).path, "ck_tail.h5");
}

// Every command's --help and -h: its usage, before any other check (nothing required, unknown
// options ignored), so `inspect --help` never looks for a file named --help.
TEST(CliHelp, EveryCommand) {
  const std::vector<std::pair<std::string, std::function<void(const std::vector<std::string>&)>>>
      commands = {
          {"quantize", [](const auto& a) { parse_quantize_args(a); }},
          {"eval", [](const auto& a) { parse_eval_args(a); }},
          {"inspect", [](const auto& a) { parse_inspect_args(a); }},
          {"plan", [](const auto& a) { parse_plan_args(a); }},
          {"layer", [](const auto& a) { parse_layer_args(a); }},
      };
  for (const auto& [name, parse] : commands) {
    for (const char* h : {"--help", "-h"}) {
      SCOPED_TRACE(name + " " + h);
      const std::string text = help_text([&] { parse({"--unknown", h}); });
      EXPECT_EQ(text.rfind("usage: gptqd " + name, 0), 0u) << text;
      EXPECT_NE(text.find("  -h, --help  "), std::string::npos) << text;
    }
  }
}

// `gptqd --help` lists every command with the synopsis its definition gives.
TEST(CliHelp, UsageListsEveryCommand) {
  const std::string u = usage();
  EvalOptions e;
  for (const std::string& line :
       {std::string("  gptqd quantize CONFIG [--restart] [--threads N]   "),
        "  " + eval_command_line(&e).synopsis() + "      ",
        std::string("  gptqd inspect FILE [--verify]  "), std::string("  gptqd export FILE"),
        std::string("  gptqd plan CONFIG --ranks N"),
        std::string("  gptqd layer --in L.safetensors --out R.safetensors --bits B"),
        std::string("  gptqd --version  ")})
    EXPECT_NE(u.find(line), std::string::npos) << "'" << line << "' in:\n" << u;
  std::istringstream lines(u);
  for (std::string line; std::getline(lines, line);) EXPECT_LE(line.size(), 110u) << line;
}

TEST(CliHelp, Version) {
  const std::string v = version_text();
  EXPECT_EQ(v.rfind("gptqd 0.", 0), 0u) << v;  // PROJECT_VERSION
  EXPECT_NE(v.find("\nbackends: cpu"), std::string::npos) << v;
}

TEST(CliRun, ExitCodes) {
  EXPECT_EQ(run_cli({"--help"}, MPI_COMM_WORLD), 0);
  EXPECT_EQ(run_cli({"-h"}, MPI_COMM_WORLD), 0);
  EXPECT_EQ(run_cli({"--version"}, MPI_COMM_WORLD), 0);
  EXPECT_EQ(run_cli({"inspect", "--help"}, MPI_COMM_WORLD), 0);
  EXPECT_EQ(run_cli({"eval", "-h"}, MPI_COMM_WORLD), 0);
  EXPECT_EQ(run_cli({"export", "--help"}, MPI_COMM_WORLD), 0);
  EXPECT_EQ(run_cli({}, MPI_COMM_WORLD), 1);
  EXPECT_EQ(run_cli({"--frobnicate"}, MPI_COMM_WORLD), 1);
  EXPECT_EQ(run_cli({"frobnicate"}, MPI_COMM_WORLD), 1);
  EXPECT_EQ(run_cli({"eval", "--frobnicate"}, MPI_COMM_WORLD), 1);
  EXPECT_EQ(run_cli({"plan", "job.yaml"}, MPI_COMM_WORLD), 1);
  EXPECT_EQ(run_cli({"export", "--frobnicate"}, MPI_COMM_WORLD), 1);
}

}  // namespace
}  // namespace gptqd
