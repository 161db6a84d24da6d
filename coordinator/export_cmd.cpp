#include "coordinator/export_cmd.h"

#include <cstdio>

#include "io/gptq_export.h"
#include "kernels/check.h"
#include "kernels/log.h"

namespace gptqd {

const char* const kExportUsage =
    "  gptqd export FILE [--run NAME] --out DIR [--format F] [--dtype T] [--for vllm]\n"
    "               [--model DIR]                       one run as a directory GPTQ loaders read\n";

int cmd_export(const std::vector<std::string>& args, MPI_Comm comm) {
  ExportOptions opt;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string& {
      GPTQD_INPUT_CHECK(i + 1 < args.size(), "export: {} needs a value", a);
      return args[++i];
    };
    if (a == "--run") {
      opt.run = value();
    } else if (a == "--out") {
      opt.out_dir = value();
    } else if (a == "--model") {
      opt.model_dir = value();
    } else if (a == "--format") {
      opt.format = parse_export_format(value());
    } else if (a == "--dtype") {
      const std::string& t = value();
      GPTQD_INPUT_CHECK(t == "float16" || t == "bfloat16" || t == "float32",
                        "export: --dtype {} is not supported (float16, bfloat16, float32)", t);
      opt.dtype = t;
    } else if (a == "--for") {
      const std::string& t = value();
      GPTQD_INPUT_CHECK(t == "vllm", "export: --for {} is not supported (vllm)", t);
      opt.for_vllm = true;
    } else if (!a.empty() && a[0] == '-') {
      throw InputError(fmt::format("export: unknown option '{}'\nusage:\n{}", a, kExportUsage));
    } else {
      GPTQD_INPUT_CHECK(opt.checkpoint.empty(), "export takes one FILE, got '{}' and '{}'",
                        opt.checkpoint, a);
      opt.checkpoint = a;
    }
  }
  GPTQD_INPUT_CHECK(!opt.checkpoint.empty() && !opt.out_dir.empty(),
                    "export needs FILE and --out DIR\nusage:\n{}", kExportUsage);
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  if (rank != 0) return 0;  // one writer; the work is serial I/O
  const std::string summary = export_gptq(opt);
  GPTQD_LOG_INFO("{}", summary);
  return 0;
}

}  // namespace gptqd
