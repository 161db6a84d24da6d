#include "commands/eval_cmd.h"

#include <CLI/CLI.hpp>
#include <cstdio>

#include "commands/command_line.h"
#include "base/log.h"

namespace gptqd {
CommandLine eval_command_line(EvalOptions* opt) {
  CommandLine cl("eval", "perplexity: original, RTN and GPTQ of each run");
  CLI::App& app = cl.app();
  app.add_option("CONFIG", opt->config_path, "the job file: its model, eval text and checkpoint")
      ->required();
  app.add_option("--run", opt->run, "evaluate this run of the checkpoint only (default: all)")
      ->type_name("NAME");
  add_threads_option(app, opt->threads);
  return cl;
}

EvalOptions parse_eval_args(const std::vector<std::string>& args) {
  EvalOptions opt;
  eval_command_line(&opt).parse(args);
  return opt;
}

int cmd_eval(const std::vector<std::string>& args, MPI_Comm comm) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  EvalOptions opt;
  if (const int rc = parse_on_every_rank(comm, [&] { opt = parse_eval_args(args); }); rc >= 0)
    return rc;
  EvalReport report;
  const int rc = run_eval(opt, comm, &report);
  if (rc == 0 && rank == 0) {
    fmt::print("{}", format_eval_table(report));
    std::fflush(stdout);
  }
  return rc;
}
}  // namespace gptqd
