#include "commands/plan_cmd.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

#include "base/check.h"
#include "base/log.h"
#include "commands/command_line.h"
#include "coordinator/plan_moe_report.h"

namespace gptqd {
namespace {

constexpr int kDefaultRanksPerNode = 8;  // GPUs of one HGX/DGX node
constexpr uint64_t kDefaultGpuMem = 80ull << 30;
constexpr uint64_t kDefaultHostMem = 1ull << 40;
constexpr int64_t kMaxRanks = 1 << 24;

// A size in bytes: B, KB/MB/GB/TB (powers of 1000), K/M/G/T and KiB/MiB/GiB/TiB (powers of
// 1024); false when `text` is not one.
bool size_bytes(const std::string& text, uint64_t* bytes) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
    ++i;
  const std::string num = text.substr(0, i);
  std::string unit;
  for (char c : text.substr(i))
    unit += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  double mult = 0;
  if (unit.empty() || unit == "b") mult = 1;
  const char* prefixes = "kmgt";
  for (int p = 0; p < 4; ++p) {
    const std::string k(1, prefixes[p]);
    const double dec = std::pow(1000.0, p + 1), bin = std::pow(1024.0, p + 1);
    if (unit == k + "b") mult = dec;
    if (unit == k || unit == k + "ib") mult = bin;
  }
  if (mult == 0 || num.empty()) return false;
  try {
    size_t used = 0;
    const double x = std::stod(num, &used) * mult;
    if (used != num.size() || !(x >= 1) || x >= 1.8e19) return false;
    *bytes = static_cast<uint64_t>(x);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

std::string size_error(const std::string& text) {
  return fmt::format("'{}' is not a size (e.g. 80GiB, 80GB, 1TiB, 85899345920)", text);
}

// Checks for the flags: a size (rewritten to bytes), a count of ranks, a positive number.
CLI::Validator size_check() {
  return CLI::Validator(
      [](std::string& v) -> std::string {
        uint64_t bytes = 0;
        if (!size_bytes(v, &bytes)) return size_error(v);
        v = std::to_string(bytes);
        return "";
      },
      "");
}
CLI::Validator count_check() {
  return integer_check([](int64_t n) {
    return n >= 1 && n <= kMaxRanks
               ? ""
               : fmt::format("{} is not a positive integer (at most {})", n, kMaxRanks);
  });
}
CLI::Validator positive_check() {
  return number_check([](double x) { return x > 0 ? "" : fmt::format("{} is not positive", x); });
}

}  // namespace

uint64_t parse_size(const std::string& flag, const std::string& text) {
  uint64_t bytes = 0;
  GPTQD_INPUT_CHECK(size_bytes(text, &bytes), "{}: {}", flag, size_error(text));
  return bytes;
}

CommandLine plan_command_line(PlanCmdOptions* opt) {
  CommandLine cl("plan", "layout, memory and time per rank, from config.json alone");
  const Machine d;
  CLI::App& app = cl.app();
  app.add_option("CONFIG", opt->config_path, "the job file (reads its model's config.json only)")
      ->required();
  app.add_option("--ranks", opt->ranks, "ranks of the job")
      ->type_name("N")
      ->required()
      ->transform(count_check());
  app.add_option("--stages", opt->stages, "pipeline stages (default: the job file's)")
      ->type_name("N|auto")
      ->transform(CLI::Validator(
          [count = count_check()](std::string& v) {
            if (v != "auto") return count(v);
            v = "0";  // opt->stages 0: automatic
            return std::string();
          },
          ""));
  app.add_option("--factorization", opt->factorization,
                 "parallel.factorization (default: the job file's)")
      ->type_name("auto|replicated|distributed")
      ->check(CLI::Validator(
          [](std::string& v) {
            return v == "auto" || v == "replicated" || v == "distributed"
                       ? std::string()
                       : fmt::format("unknown factorization '{}' (auto, replicated, distributed)",
                                     v);
          },
          ""));
  app.add_option("--inputs", opt->inputs, "calibration.inputs (default: the job file's)")
      ->type_name("quantized|original|quantized_in_stage")
      ->check(CLI::Validator(
          [](std::string& v) {
            return v == "quantized" || v == "original" || v == "quantized_in_stage"
                       ? std::string()
                       : fmt::format(
                             "unknown calibration.inputs '{}' (quantized, original, "
                             "quantized_in_stage)",
                             v);
          },
          ""));
  app.add_option("--ranks-per-node", opt->machine.ranks_per_node,
                 fmt::format("GPUs per node (default: min(ranks, {}))", kDefaultRanksPerNode))
      ->type_name("N")
      ->transform(count_check());
  app.add_option("--gpu-mem", opt->machine.device_mem, "device memory per rank (default 80GiB)")
      ->type_name("SIZE")
      ->transform(size_check());
  app.add_option("--host-mem", opt->machine.host_mem, "host memory per node (default 1TiB)")
      ->type_name("SIZE")
      ->transform(size_check());
  app.add_option("--tflops", opt->machine.tflops,
                 fmt::format("fp32 TFLOPS per rank (default {:g})", d.tflops))
      ->type_name("X")
      ->transform(positive_check());
  app.add_option("--bf16-tflops", opt->machine.bf16_tflops,
                 fmt::format("bf16 tensor-core TFLOPS per rank, for precision fast (default {:g})",
                             d.bf16_tflops))
      ->type_name("X")
      ->transform(positive_check());
  app.add_option("--factor-tflops", opt->machine.factor_tflops,
                 fmt::format("TFLOPS of the Hessian factorization per rank (default {:g})",
                             d.factor_tflops))
      ->type_name("X")
      ->transform(positive_check());
  app.add_option("--link-gbs", opt->machine.link_gbs,
                 fmt::format("collective GB/s within a node (default {:g})", d.link_gbs))
      ->type_name("X")
      ->transform(positive_check());
  app.add_option("--net-gbs", opt->machine.net_gbs,
                 fmt::format("collective GB/s across nodes (default {:g})", d.net_gbs))
      ->type_name("X")
      ->transform(positive_check());
  app.add_option("--disk-gbs", opt->machine.disk_gbs,
                 fmt::format("read GB/s per node (default {:g})", d.disk_gbs))
      ->type_name("X")
      ->transform(positive_check());
  app.add_option("--device", opt->device_name,
                 "what the ranks compute on (default gpu; cpu: the CPU backend, exact precision, "
                 "with the rates of bench/cpu_rates given as --tflops and --factor-tflops)")
      ->type_name("gpu|cpu")
      ->check(CLI::Validator(
          [](std::string& v) {
            return v == "gpu" || v == "cpu" ? "" : fmt::format("'{}' is not gpu or cpu", v);
          },
          ""));
  app.add_option("--dtype", opt->dtype, "weight dtype (default: config.json's torch_dtype)")
      ->type_name("bf16|f16|f32")
      ->transform(CLI::Validator(
          [](std::string& v) {
            return dtype_bytes(v) > 0 ? "" : fmt::format("unknown dtype '{}' (bf16, f16, f32)", v);
          },
          ""));
  cl.set_note(
      "SIZE: B, KB/MB/GB/TB (powers of 1000), K/M/G/T or KiB/MiB/GiB/TiB (powers of 1024).");
  return cl;
}

PlanCmdOptions parse_plan_args(const std::vector<std::string>& args) {
  PlanCmdOptions opt;
  opt.machine.device_mem = kDefaultGpuMem;
  opt.machine.host_mem = kDefaultHostMem;
  opt.machine.ranks_per_node = 0;
  plan_command_line(&opt).parse(args);
  opt.cpu = opt.device_name == "cpu";
  if (opt.machine.ranks_per_node == 0)
    opt.machine.ranks_per_node = std::min(opt.ranks, kDefaultRanksPerNode);
  return opt;
}

int cmd_plan(const std::vector<std::string>& args, MPI_Comm comm) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  PlanCmdOptions opt;
  if (const int rc = parse_on_every_rank(comm, [&] { opt = parse_plan_args(args); }); rc >= 0)
    return rc;
  PlanReport rep;
  try {
    rep = plan_is_moe(opt.config_path) ? make_moe_plan_report(opt) : make_plan_report(opt);
  } catch (const InputError& e) {
    if (rank == 0) GPTQD_LOG_ERROR("error: {}", e.what());
    return 1;
  }
  if (rank == 0) {
    fmt::print("{}", rep.text);
    std::fflush(stdout);
    if (!rep.fits) GPTQD_LOG_ERROR("error: the layout does not fit: {}", rep.misfit);
  }
  return rep.fits ? 0 : 1;
}

}  // namespace gptqd
