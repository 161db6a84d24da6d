#include "commands/layer_cmd.h"

#include <CLI/CLI.hpp>
#include <cstdio>

#include "commands/command_line.h"
#include "base/check.h"
#include "base/log.h"

namespace gptqd {
CommandLine layer_command_line(LayerOptions* opt) {
  CommandLine cl("layer", "GPTQ of one linear layer (debugging, tests, benchmarks)");
  CLI::App& app = cl.app();
  GptqOptions& g = opt->gptq;
  app.add_option("--in", opt->in_path,
                 "weight [out, in] and inputs [tokens, in] (F32/F16/BF16), optional bias")
      ->type_name("L.safetensors")
      ->required();
  app.add_option("--out", opt->out_path, "codes, scales, zeros, g_idx, perm, dequant, loss (bias)")
      ->type_name("R.safetensors")
      ->required();
  app.add_option("--bits", g.bits, "2, 3, 4 or 8")
      ->type_name("B")
      ->required()
      ->transform(integer_check([](int64_t b) {
        return b == 2 || b == 3 || b == 4 || b == 8 ? ""
                                                    : fmt::format("{} is not one of 2, 3, 4, 8", b);
      }));
  app.add_option("--group-size", g.group_size,
                 "-1 (one group per row) or > 0 (the last group may be shorter)")
      ->type_name("G")
      ->required()
      ->transform(integer_check([](int64_t n) {
        return n == -1 || n > 0 ? ""
                                : fmt::format(
                                      "{} is out of range: use -1 (one group per row) or a "
                                      "group size > 0",
                                      n);
      }));
  app.add_flag("--sym", g.sym, "symmetric quantizer (zero at (2^B) / 2)");
  app.add_flag("--act-order", g.act_order,
               "columns by descending diag(H); g_idx and perm record the order");
  app.add_flag("--static-groups", g.static_groups,
               "group parameters from the original weight (needs G > 0)");
  app.add_option("--damp", g.damp_percent,
                 "damp_percent in [0, 1), default 0.01; doubled on a failed factorization")
      ->type_name("D")
      ->transform(number_check([](double d) {
        return d >= 0 && d < 1 ? ""
                               : fmt::format(
                                     "{} is out of range: must be >= 0 and < 1 (a fraction "
                                     "of the mean of diag(H): 0.01 is 1%)",
                                     d);
      }));
  app.add_option("--block-size", g.block_size, "columns per lazy-batch block, default 128")
      ->type_name("S")
      ->transform(integer_check([](int64_t n) {
        return n > 0 ? "" : fmt::format("{} is out of range: must be > 0", n);
      }));
  app.add_flag("--mse-clip", g.mse_clip, "grid-search the clipping range");
  app.add_option("--threads", opt->threads, "CPU threads, default all cores")
      ->type_name("T")
      ->transform(integer_in(1, kMaxThreads));
  cl.set_note("H = (2 / tokens) X^T X: every token row is one sample.");
  return cl;
}

LayerOptions parse_layer_args(const std::vector<std::string>& args) {
  LayerOptions opt;
  opt.gptq = GptqOptions();
  layer_command_line(&opt).parse(args);
  GPTQD_INPUT_CHECK(!(opt.gptq.static_groups && opt.gptq.group_size == -1),
                    "--static-groups needs --group-size > 0 (static groups of -1, one group per "
                    "row, are the plain per-row parameters)");
  return opt;
}

int cmd_layer(const std::vector<std::string>& args, MPI_Comm comm) {
  int rank = 0, world = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &world);
  LayerOptions opt;
  if (const int rc = parse_on_every_rank(comm, [&] { opt = parse_layer_args(args); }); rc >= 0)
    return rc;
  try {
    GPTQD_INPUT_CHECK(world == 1, "layer runs in one process; run it without mpirun (got {} ranks)",
                      world);
    const LayerReport rep = quantize_layer_file(opt);
    fmt::print("{}\n", layer_summary(opt, rep));
    std::fflush(stdout);
    return 0;
  } catch (const InputError& e) {
    if (rank == 0) GPTQD_LOG_ERROR("error: {}", e.what());
    return 1;
  }
}

}  // namespace gptqd
