// bench/ckpt_scale: the checkpoint at mixture-of-experts scale (issue 19 item 4). DeepSeek-V3
// has 58 MoE blocks of 256 routed experts x 3 linears, about 45,000 expert linears per run; the
// checkpoint keeps each linear as its own group of datasets. This bench builds a checkpoint with
// that many layers (the real count and names, tiny data: rows x cols per layer, so the disk and
// the time go to metadata, not bytes), and times each step a job takes: create (rank 0 writes
// the whole layout), write every layer of every block (the layers split over the ranks, each
// block marked complete), `inspect --verify`'s read-back, and a reader's open. The reference
// in the same run is a dense model of the same data per layer (Llama-3-70B's 80 blocks x 7
// linears); the ratios printed are per layer (MoE step time / layers) / (dense step time /
// layers): near 1 means the layout scales with the layer count and nothing worse.
//
//   mpirun -np 2 build/bench/ckpt_scale [--experts E] [--blocks B] [--rows R] [--cols C]
//       [--dir DIR] [--keep]
// Defaults: E = 256, B = 61 (DeepSeek-V3: 3 dense + 58 MoE; here every block is MoE-shaped,
// which overcounts by 3 blocks), rows 8, cols 128, DIR = /tmp. docs/checkpoint-format.md has
// the figures.
#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "base/check.h"
#include "base/timing.h"
#include "io/checkpoint/checkpoint.h"
#include "io/checkpoint/checkpoint_verify.h"

namespace gptqd {
namespace {

struct Args {
  int64_t experts = 256, blocks = 61, rows = 8, cols = 128;
  std::string dir = "/tmp";
  bool keep = false;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto next = [&]() -> std::string {
      GPTQD_INPUT_CHECK(i + 1 < argc, "{} needs a value", k);
      return argv[++i];
    };
    if (k == "--experts")
      a.experts = std::stoll(next());
    else if (k == "--blocks")
      a.blocks = std::stoll(next());
    else if (k == "--rows")
      a.rows = std::stoll(next());
    else if (k == "--cols")
      a.cols = std::stoll(next());
    else if (k == "--dir")
      a.dir = next();
    else if (k == "--keep")
      a.keep = true;
    else
      GPTQD_INPUT_CHECK(false,
                        "unknown argument {} (see the comment at the top of "
                        "bench/ckpt_scale.cpp)",
                        k);
  }
  return a;
}

// The linears of one DeepSeek-V3 MoE block (MLA attention, one shared expert, E routed ones)
// or, with experts < 0, of one Llama block.
std::vector<CkptLayerShape> block_layers(int64_t experts, int64_t rows, int64_t cols) {
  std::vector<std::string> names;
  if (experts < 0) {
    names = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
             "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};
  } else {
    names = {"self_attn.q_a_proj", "self_attn.q_b_proj", "self_attn.kv_a_proj_with_mqa",
             "self_attn.kv_b_proj", "self_attn.o_proj"};
    for (const char* p : {"gate_proj", "up_proj", "down_proj"})
      names.push_back(std::string("mlp.shared_experts.") + p);
    for (int64_t e = 0; e < experts; ++e)
      for (const char* p : {"gate_proj", "up_proj", "down_proj"})
        names.push_back("mlp.experts." + std::to_string(e) + "." + p);
  }
  std::vector<CkptLayerShape> out;
  int group = 0;
  for (const auto& n : names) out.push_back({n, rows, cols, group++, false});
  return out;
}

struct Times {
  double create = 0, write = 0, verify = 0, open = 0;
  int64_t layers = 0;
  uintmax_t bytes = 0;
};

Times run_case(const Args& a, int64_t experts, int64_t blocks, const std::string& tag,
               MPI_Comm comm) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  CkptLayout layout;
  layout.n_blocks = blocks;
  layout.family = experts < 0 ? "llama" : "deepseek_v3";
  layout.layers = block_layers(experts, a.rows, a.cols);
  CkptRunSpec run;
  run.name = "w4g128";
  layout.runs = {run};
  layout.model_config_json = "{}";
  layout.job_config_yaml = "bench: ckpt_scale\n";
  layout.fingerprint = "bench";
  const std::string path = a.dir + "/gptqd-ckpt-scale-" + tag + ".h5";
  Times t;
  t.layers = blocks * static_cast<int64_t>(layout.layers.size());

  MPI_Barrier(comm);
  SteadyClock::time_point t0 = SteadyClock::now();
  Checkpoint ck = Checkpoint::create(path, layout, comm);
  MPI_Barrier(comm);
  t.create = seconds_since(t0);

  LayerData d;
  const int64_t groups = run.groups(a.cols);
  d.codes.assign(static_cast<size_t>(a.rows * a.cols), 5);
  d.scales.assign(static_cast<size_t>(groups * a.rows), 0.01f);
  d.zeros.assign(static_cast<size_t>(groups * a.rows), 8.0f);
  d.g_idx.assign(static_cast<size_t>(a.cols), 0);
  d.perm.resize(static_cast<size_t>(a.cols));
  for (int64_t c = 0; c < a.cols; ++c) d.perm[c] = static_cast<int32_t>(c);
  d.bias.assign(static_cast<size_t>(a.rows), 0.0f);
  MPI_Barrier(comm);
  t0 = SteadyClock::now();
  for (int64_t b = 0; b < blocks; ++b) {
    for (size_t l = static_cast<size_t>(rank); l < layout.layers.size();
         l += static_cast<size_t>(size))
      ck.write_layer(run.name, b, layout.layers[l].name, 0, a.rows, d);
    ck.sync();
    MPI_Barrier(comm);
    if (rank == 0) ck.mark_complete(run.name, b);
    if (rank == 0 && (b + 1) % 10 == 0)
      std::printf("  %s: %lld of %lld blocks written, %.1f s\n", tag.c_str(),
                  static_cast<long long>(b + 1), static_cast<long long>(blocks), seconds_since(t0));
  }
  MPI_Barrier(comm);
  t.write = seconds_since(t0);
  ck.close();

  if (rank == 0) {
    t0 = SteadyClock::now();
    const VerifyResult v = verify_checkpoint(path);
    t.verify = seconds_since(t0);
    GPTQD_CHECK(v.ok() && v.layers_checked == t.layers, "{}: verify found {} damaged, {} layers",
                tag, v.damaged.size(), v.layers_checked);
    t0 = SteadyClock::now();
    const Checkpoint r = Checkpoint::open_read(path);
    GPTQD_CHECK(r.layout().layers.size() == layout.layers.size(), "layout read back differs");
    t.open = seconds_since(t0);
    t.bytes = std::filesystem::file_size(path);
    if (!a.keep) std::filesystem::remove(path);
  }
  MPI_Barrier(comm);
  return t;
}

int main_bench(int argc, char** argv) {
  const Args a = parse(argc, argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (rank == 0)
    std::printf(
        "ckpt_scale: %d ranks, %lld blocks x (8 + 3 x %lld experts) linears of %lld x %lld "
        "against 80 dense blocks x 7 linears\n",
        size, static_cast<long long>(a.blocks), static_cast<long long>(a.experts),
        static_cast<long long>(a.rows), static_cast<long long>(a.cols));
  const Times dense = run_case(a, -1, 80, "dense", MPI_COMM_WORLD);
  const Times moe = run_case(a, a.experts, a.blocks, "moe", MPI_COMM_WORLD);
  if (rank == 0) {
    auto row = [](const char* name, const Times& t) {
      std::printf(
          "%-6s %7lld layers  create %8.2f s  write %8.2f s  verify %8.2f s  open %6.3f s"
          "  file %8.1f MiB (%.1f KiB per layer)\n",
          name, static_cast<long long>(t.layers), t.create, t.write, t.verify, t.open,
          static_cast<double>(t.bytes) / (1 << 20),
          static_cast<double>(t.bytes) / 1024.0 / static_cast<double>(t.layers));
    };
    row("dense", dense);
    row("moe", moe);
    const double n = static_cast<double>(moe.layers) / static_cast<double>(dense.layers);
    std::printf(
        "ratio per layer (moe / dense): create %.2f  write %.2f  verify %.2f  open %.2f "
        "(layers x%.0f)\n",
        moe.create / dense.create / n, moe.write / dense.write / n, moe.verify / dense.verify / n,
        moe.open / dense.open / n, n);
  }
  return 0;
}

}  // namespace
}  // namespace gptqd

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rc = 1;
  try {
    rc = gptqd::main_bench(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ckpt_scale: %s\n", e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Finalize();
  return rc;
}
