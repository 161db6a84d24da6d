#include "coordinator/cli.h"

#include <cstdio>

#include "coordinator/eval_cmd.h"
#include "coordinator/export_cmd.h"
#include "coordinator/layer_cmd.h"
#include "coordinator/plan_cmd.h"
#include "coordinator/quantize_job.h"
#include "io/checkpoint.h"
#include "kernels/check.h"
#include "kernels/log.h"

namespace gptqd {
namespace {

int parse_int(const std::string& flag, const std::string& v) {
  try {
    size_t used = 0;
    const int n = std::stoi(v, &used);
    if (used == v.size()) return n;
  } catch (const std::exception&) {
  }
  throw InputError(fmt::format("{}: '{}' is not an integer", flag, v));
}

// Argument errors are found identically on every rank, before any collective:
// rank 0 reports, every rank returns 1.
int argument_error(MPI_Comm comm, const std::string& message) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  if (rank == 0) GPTQD_LOG_ERROR("error: {}", message);
  return 1;
}

QuantizeOptions parse_quantize(const std::vector<std::string>& args) {
  QuantizeOptions opt;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--restart") {
      opt.restart = true;
    } else if (a == "--threads") {
      GPTQD_INPUT_CHECK(i + 1 < args.size(), "--threads needs a value");
      opt.threads = parse_int(a, args[++i]);
    } else if (!a.empty() && a[0] == '-') {
      throw InputError(fmt::format("quantize: unknown option '{}'\n{}", a, usage()));
    } else {
      GPTQD_INPUT_CHECK(opt.config_path.empty(), "quantize takes one CONFIG, got '{}' and '{}'",
                        opt.config_path, a);
      opt.config_path = a;
    }
  }
  GPTQD_INPUT_CHECK(!opt.config_path.empty(), "quantize: missing CONFIG\n{}", usage());
  return opt;
}

int cmd_quantize(const std::vector<std::string>& args, MPI_Comm comm) {
  QuantizeOptions opt;
  try {
    opt = parse_quantize(args);
  } catch (const InputError& e) {
    return argument_error(comm, e.what());
  }
  return run_quantize(opt, comm);
}

int cmd_inspect(const std::vector<std::string>& args, MPI_Comm comm) {
  if (args.size() != 1) return argument_error(comm, "inspect takes one FILE\n" + usage());
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  if (rank == 0) {
    fmt::print("{}", inspect_checkpoint(args[0]));
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

std::string usage() {
  return "usage:\n"
         "  gptqd quantize CONFIG [--restart] [--threads N]   quantize a model (run under "
         "mpirun/srun)\n"
         "  gptqd inspect FILE                                runs, settings, per-layer errors, "
         "completeness\n"
         "  gptqd eval CONFIG [--run NAME] [--threads N]      perplexity: original, RTN and GPTQ "
         "of each run\n"
         "  gptqd plan CONFIG --ranks N [--gpu-mem 80GiB]     layout, memory and time per rank (no "
         "weights)\n"
         "  gptqd layer --in L --out R --bits B --group-size G [...]  GPTQ of one linear layer "
         "(layer --help)\n" +
         std::string(kExportUsage);
}

int run_cli(const std::vector<std::string>& args, MPI_Comm comm) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    if (rank == 0) fmt::print("{}", usage());
    return args.empty() ? 2 : 0;
  }
  const std::string cmd = args[0];
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (cmd == "quantize") return cmd_quantize(rest, comm);
  if (cmd == "inspect") return cmd_inspect(rest, comm);
  if (cmd == "eval") return cmd_eval(rest, comm);
  if (cmd == "export") return cmd_export(rest, comm);
  if (cmd == "plan") return cmd_plan(rest, comm);
  if (cmd == "layer") return cmd_layer(rest, comm);
  return argument_error(comm, fmt::format("unknown command '{}'\n{}", cmd, usage()));
}

}  // namespace gptqd
