#include "coordinator/export_cmd.h"

#include <cstdio>

#include "io/gptq_export.h"
#include "kernels/check.h"
#include "kernels/log.h"

namespace gptqd {

const char* const kExportUsage =
    "  gptqd export FILE [--run NAME] --out DIR [--format gptq] [--model DIR]\n"
    "                                                    one run as an HF GPTQ directory\n";

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
      const std::string& f = value();
      GPTQD_INPUT_CHECK(f == "gptq", "export: --format {} is not supported (supported: gptq)", f);
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
