#include "commands/export_cmd.h"

#include <CLI/CLI.hpp>
#include <cstdio>

#include "commands/command_line.h"
#include "base/check.h"
#include "base/log.h"

namespace gptqd {

namespace {

// A check that accepts one of `values`, naming them when it refuses.
CLI::Validator one_of(std::vector<std::string> values) {
  std::string list;
  for (const std::string& v : values) list += (list.empty() ? "" : ", ") + v;
  return CLI::Validator(
      [values, list](std::string& s) -> std::string {
        for (const std::string& v : values)
          if (s == v) return "";
        return s + " is not one of " + list;
      },
      "", "one_of");
}

}  // namespace

CommandLine export_command_line(ExportOptions* opt) {
  CommandLine cl("export", "one run as a directory GPTQ loaders read");
  CLI::App& app = cl.app();
  app.add_option("FILE", opt->checkpoint, "the checkpoint (HDF5) the run is in")->required();
  app.add_option("--run", opt->run, "the run to export (default: the checkpoint's only run)")
      ->type_name("NAME");
  app.add_option("--out", opt->out_dir, "the directory to write (created; files replaced)")
      ->type_name("DIR")
      ->required();
  app.add_option_function<std::string>(
         "--format", [opt](const std::string& f) { opt->format = parse_export_format(f); },
         "gptq (v1: AutoGPTQ, transformers, vLLM; default), gptq_v2 (GPTQModel), "
         "compressed-tensors (llm-compressor's pack-quantized: transformers, vLLM)")
      ->type_name("F")
      ->check(one_of({"gptq", "gptq_v2", "compressed-tensors"}));
  app.add_option("--dtype", opt->dtype,
                 "float16, bfloat16 or float32: the copied tensors, scales and biases (default: "
                 "the model's own dtype)")
      ->type_name("T")
      ->check(one_of({"float16", "bfloat16", "float32"}));
  app.add_option_function<std::string>(
         "--for", [opt](const std::string&) { opt->for_vllm = true; },
         "vllm: refuse a run vLLM cannot serve (naming why), fp16 for an fp32 model")
      ->type_name("vllm")
      ->check(one_of({"vllm"}));
  app.add_option("--model", opt->model_dir,
                 "the original model directory (default: model.path of the checkpoint's job)")
      ->type_name("DIR");
  cl.set_note(
      "Formats, loaders and what each refuses: docs/export.md. Runs on one rank (rank 0 "
      "writes).");
  return cl;
}

ExportOptions parse_export_args(const std::vector<std::string>& args) {
  ExportOptions opt;
  export_command_line(&opt).parse(args);
  return opt;
}

int cmd_export(const std::vector<std::string>& args, MPI_Comm comm) {
  ExportOptions opt;
  if (const int rc = parse_on_every_rank(comm, [&] { opt = parse_export_args(args); }); rc >= 0)
    return rc;
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  if (rank != 0) return 0;  // one writer; the work is serial I/O
  const std::string summary = export_gptq(opt);
  GPTQD_LOG_INFO("{}", summary);
  return 0;
}

}  // namespace gptqd
