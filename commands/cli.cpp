#include "commands/cli.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>

#include "commands/command_line.h"
#include "commands/eval_cmd.h"
#include "commands/export_cmd.h"
#include "commands/layer_cmd.h"
#include "commands/plan_cmd.h"
#include "io/checkpoint/checkpoint.h"
#include "io/checkpoint/checkpoint_verify.h"
#include "kernels/backend.h"
#include "base/check.h"
#include "base/log.h"

#ifndef GPTQD_VERSION_STRING
#error "GPTQD_VERSION_STRING comes from coordinator/CMakeLists.txt (PROJECT_VERSION)"
#endif

namespace gptqd {
namespace {

constexpr size_t kUsageWidth = 100;    // `gptqd --help` wraps a synopsis here
constexpr size_t kSummaryColumn = 52;  // and starts summaries here
constexpr const char* kIndent = "  ";
constexpr const char* kContinuation = "      ";

// One command in `gptqd --help`: the synopsis wrapped between its parts, the summary on its
// last line when it fits there, else on a line of its own.
std::string usage_entry(const std::vector<std::string>& parts, const std::string& summary) {
  std::string out = wrap_words(parts, kIndent, kContinuation, kUsageWidth);
  const auto last_line = [&] {
    const size_t nl = out.rfind('\n');
    return out.size() - (nl == std::string::npos ? 0 : nl + 1);
  };
  if (last_line() + 2 > kSummaryColumn) out += "\n";
  return out + std::string(kSummaryColumn - last_line(), ' ') + summary + "\n";
}

std::string usage_entry(const CommandLine& cl) {
  return usage_entry(cl.synopsis_parts(), cl.summary());
}

// gptqd's own options, before the command word.
CommandLine top_command_line(bool* version) {
  CommandLine cl("", "quantize large language models with GPTQ across MPI ranks");
  cl.app().add_flag("--version", *version, "the version and the backends of this build");
  return cl;
}

// Argument errors are found identically on every rank, before any collective:
// rank 0 reports, every rank returns 1.
int argument_error(MPI_Comm comm, const std::string& message) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  if (rank == 0) GPTQD_LOG_ERROR("error: {}", message);
  return 1;
}

void print_on_rank0(MPI_Comm comm, const std::string& text) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  if (rank != 0) return;
  fmt::print("{}", text);
  std::fflush(stdout);
}

int cmd_quantize(const std::vector<std::string>& args, MPI_Comm comm) {
  QuantizeOptions opt;
  if (const int rc = parse_on_every_rank(comm, [&] { opt = parse_quantize_args(args); }); rc >= 0)
    return rc;
  return run_quantize(opt, comm);
}

int cmd_inspect(const std::vector<std::string>& args, MPI_Comm comm) {
  InspectOptions opt;
  if (const int rc = parse_on_every_rank(comm, [&] { opt = parse_inspect_args(args); }); rc >= 0)
    return rc;
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  if (rank != 0) return 0;
  if (!opt.verify) {
    fmt::print("{}", inspect_checkpoint(opt.path));
    std::fflush(stdout);
    return 0;
  }
  const VerifyResult r = verify_checkpoint(opt.path);
  fmt::print("{}", format_verify_result(opt.path, r));
  std::fflush(stdout);
  return r.ok() ? 0 : 1;
}

// export's arguments (and --help) are parsed in cmd_export; an error of the export itself that
// the input causes (no such run, a format that cannot hold it) is, like an argument error, one
// line and exit code 1.
int cmd_export_dispatch(const std::vector<std::string>& args, MPI_Comm comm) {
  try {
    return cmd_export(args, comm);
  } catch (const InputError& e) {
    return argument_error(comm, e.what());
  }
}

}  // namespace

CommandLine quantize_command_line(QuantizeOptions* opt) {
  CommandLine cl("quantize", "quantize (run under mpirun / srun)");
  CLI::App& app = cl.app();
  app.add_option("CONFIG", opt->config_path, "the job file (YAML)")->required();
  app.add_flag("--restart", opt->restart,
               "discard a checkpoint made from other inputs instead of refusing it");
  add_threads_option(app, opt->threads);
  return cl;
}

QuantizeOptions parse_quantize_args(const std::vector<std::string>& args) {
  QuantizeOptions opt;
  quantize_command_line(&opt).parse(args);
  return opt;
}

CommandLine inspect_command_line(InspectOptions* opt) {
  CommandLine cl("inspect", "runs, settings, per-layer errors, completeness");
  cl.app().add_option("FILE", opt->path, "the checkpoint (HDF5)")->required();
  cl.app().add_flag("--verify", opt->verify,
                    "read back every complete block and check its checksums and ranges; exit 1 "
                    "when any is damaged (the first step after a crash or a copy)");
  return cl;
}

InspectOptions parse_inspect_args(const std::vector<std::string>& args) {
  InspectOptions opt;
  inspect_command_line(&opt).parse(args);
  return opt;
}

std::string usage() {
  QuantizeOptions quantize;
  EvalOptions eval;
  InspectOptions inspect;
  PlanCmdOptions plan;
  ExportOptions export_opt;
  LayerOptions layer;
  bool version = false;
  CommandLine top = top_command_line(&version);
  std::string out = "usage: gptqd COMMAND ARGS...   (gptqd COMMAND --help: its arguments)\n\n";
  out += usage_entry(quantize_command_line(&quantize));
  out += usage_entry(eval_command_line(&eval));
  out += usage_entry(inspect_command_line(&inspect));
  out += usage_entry(export_command_line(&export_opt));
  out += usage_entry(plan_command_line(&plan));
  out += usage_entry(layer_command_line(&layer));
  out += usage_entry({"gptqd --version"}, top.app().get_option("--version")->get_description());
  return out;
}

std::string version_text() {
  std::string backends = "cpu";
#ifdef GPTQD_WITH_CUDA
  backends += fmt::format(", cuda ({} device(s) visible)", cuda_device_count());
#endif
  return fmt::format("gptqd {}\nbackends: {}\n", GPTQD_VERSION_STRING, backends);
}

int run_cli(const std::vector<std::string>& args, MPI_Comm comm) {
  // gptqd's own options are the words before the command.
  const auto command = std::find_if(args.begin(), args.end(),
                                    [](const std::string& a) { return a.empty() || a[0] != '-'; });
  bool version = false;
  const int rc = parse_on_every_rank(comm, [&] {
    try {
      top_command_line(&version).parse({args.begin(), command});
    } catch (const HelpRequest&) {
      throw HelpRequest(usage());
    }
    GPTQD_INPUT_CHECK(version || command != args.end(),
                      "missing COMMAND (gptqd --help lists the commands)");
  });
  if (rc >= 0) return rc;
  if (version) {
    print_on_rank0(comm, version_text());
    return 0;
  }
  const std::string& cmd = *command;
  const std::vector<std::string> rest(command + 1, args.end());
  if (cmd == "help") {
    print_on_rank0(comm, usage());
    return 0;
  }
  if (cmd == "quantize") return cmd_quantize(rest, comm);
  if (cmd == "inspect") return cmd_inspect(rest, comm);
  if (cmd == "eval") return cmd_eval(rest, comm);
  if (cmd == "export") return cmd_export_dispatch(rest, comm);
  if (cmd == "plan") return cmd_plan(rest, comm);
  if (cmd == "layer") return cmd_layer(rest, comm);
  return argument_error(comm,
                        fmt::format("unknown command '{}' (gptqd --help lists the commands)", cmd));
}

}  // namespace gptqd
