// MPI driver for tests/mpi/checkpoint_*.sh: writes a small checkpoint from several ranks with data
// derived from (run, block, layer, index, writer rank), so tests/mpi/ckpt_check.py can recompute
// every value. Block ownership: block b < n_blocks - 1 belongs to rank b % world; the last block
// is shared, rank k writing rows [k * rows / world, (k + 1) * rows / world) of each layer.
//
//   ckpt_writer parallel <file>            create; write run w4g4 fully, run w8gall blocks 0-2 and
//                                          the shared block (block 3 written but never marked)
//   ckpt_writer crash <file> <record>      (2 ranks) rank 0 writes and marks blocks 0, 2, 4 of
//                                          w4g4; rank 1 blocks 1, 3, then half of block 5, then
//                                          raise(SIGKILL). Each rank appends "marked <run> <b>" to
//                                          <record>.<rank> after mark_complete returns
//   ckpt_writer crash-throw <file> <record>  as crash, but rank 1 throws instead: its Checkpoint
//                                          is destroyed while unwinding (no collective close, or
//                                          the job would hang) and main() calls MPI_Abort
//   ckpt_writer resume <file>              open_resume; write and mark every incomplete block
//   ckpt_writer resume-mismatch <file>     open_resume with another fingerprint; must be refused
//   ckpt_writer inspect <file>             print inspect_checkpoint (rank 0)
#include <fcntl.h>
#include <mpi.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "io/checkpoint/checkpoint.h"
#include "base/check.h"

namespace {

using namespace gptqd;

constexpr int64_t kBlocks = 7;

CkptLayout test_layout() {
  CkptLayout l;
  l.n_blocks = kBlocks;
  l.layers = {{"self_attention.query_key_value", 12, 10},
              {"self_attention.dense", 5, 8},
              {"mlp.dense_h_to_4h", 9, 6}};
  CkptRunSpec a;
  a.name = "w4g4";
  a.bits = 4;
  a.group_size = 4;
  a.act_order = true;
  CkptRunSpec b;
  b.name = "w8gall";
  b.bits = 8;
  b.group_size = -1;
  b.sym = true;
  b.damp_percent = 0.1;
  l.runs = {a, b};
  l.model_config_json = R"({"model_type": "bloom", "n_layer": 7, "hidden_size": 8, "n_head": 2})";
  l.job_config_yaml = "quant:\n  bits: 4\n";
  l.fingerprint = "ckpt-writer-test-1";
  return l;
}

// The formulas below are repeated in tests/mpi/ckpt_check.py; keep them in step.
LayerData make_layer(const CkptLayout& l, int ri, int64_t b, int li, int64_t rb, int64_t re,
                     int writer) {
  const CkptRunSpec& run = l.runs[ri];
  const int64_t cols = l.layers[li].cols;
  const int64_t groups = run.groups(cols);
  const int64_t gs = run.group_size == -1 ? cols : run.group_size;
  const int64_t levels = int64_t{1} << run.bits;
  LayerData d;
  for (int64_t r = rb; r < re; ++r)
    for (int64_t c = 0; c < cols; ++c)
      d.codes.push_back(static_cast<uint8_t>((r * 7 + c * 3 + b * 5 + li * 11 + ri * 13) % levels));
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t r = rb; r < re; ++r) {
      d.scales.push_back(0.25f * static_cast<float>(1 + (g * 3 + r + b + li + ri) % 8));
      d.zeros.push_back(static_cast<float>((g + 2 * r + b + li) % levels));
    }
  for (int64_t c = 0; c < cols; ++c) {
    d.g_idx.push_back(static_cast<int32_t>(((c + b + li) % cols) / gs));
    d.perm.push_back(static_cast<int32_t>(run.act_order ? (cols - 1 - c + b) % cols : c));
  }
  for (int64_t r = rb; r < re; ++r)
    d.bias.push_back(static_cast<float>(writer * 1000 + b * 10 + li) +
                     0.125f * static_cast<float>(r % 8));
  const double base = 100.0 * ri + 10.0 * b + li;
  d.stats = {base + 0.5, base + 0.25, base + 0.75, writer + 0.125, 0.01 * (ri + 1)};
  return d;
}

struct Ctx {
  Checkpoint* ckpt;
  CkptLayout layout;
  int rank, world;
  std::string record;  // "" = no record
};

void record_line(const Ctx& ctx, const std::string& line) {
  if (ctx.record.empty()) return;
  // One write(2) per line: nothing stays in a user-space buffer when the process is killed.
  const std::string path = ctx.record + "." + std::to_string(ctx.rank);
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  GPTQD_CHECK(fd >= 0, "cannot open {}", path);
  const std::string text = line + "\n";
  GPTQD_CHECK(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()),
              "cannot write {}", path);
  ::close(fd);
}

// Writes layers [0, n_layers) of an owned block, all rows.
void write_owned(Ctx& ctx, int ri, int64_t b, int n_layers) {
  const auto& run = ctx.layout.runs[ri].name;
  for (int li = 0; li < n_layers; ++li) {
    const int64_t rows = ctx.layout.layers[li].rows;
    ctx.ckpt->write_layer(run, b, ctx.layout.layers[li].name, 0, rows,
                          make_layer(ctx.layout, ri, b, li, 0, rows, ctx.rank));
  }
}

void write_and_mark_owned(Ctx& ctx, int ri, int64_t b) {
  write_owned(ctx, ri, b, static_cast<int>(ctx.layout.layers.size()));
  ctx.ckpt->mark_complete(ctx.layout.runs[ri].name, b);
  record_line(ctx, fmt::format("marked {} {}", ctx.layout.runs[ri].name, b));
}

// Collective: every rank writes its row range of the shared block; one rank marks it.
void write_shared(Ctx& ctx, int ri, int64_t b) {
  const auto& run = ctx.layout.runs[ri].name;
  for (size_t li = 0; li < ctx.layout.layers.size(); ++li) {
    const int64_t rows = ctx.layout.layers[li].rows;
    const int64_t rb = ctx.rank * rows / ctx.world, re = (ctx.rank + 1) * rows / ctx.world;
    if (rb == re) continue;
    ctx.ckpt->write_layer(run, b, ctx.layout.layers[li].name, rb, re,
                          make_layer(ctx.layout, ri, b, static_cast<int>(li), rb, re, ctx.rank));
  }
  ctx.ckpt->sync();             // the writers may be on other nodes than the marking rank
  MPI_Barrier(MPI_COMM_WORLD);  // all rows are written before the block is marked
  if (ctx.rank == b % ctx.world) {
    ctx.ckpt->mark_complete(run, b);
    record_line(ctx, fmt::format("marked {} {}", run, b));
  }
}

int run_parallel(const std::string& path, Ctx& ctx) {
  Checkpoint ckpt = Checkpoint::create(path, ctx.layout, MPI_COMM_WORLD);
  ctx.ckpt = &ckpt;
  for (int64_t b = 0; b < kBlocks - 1; ++b)
    if (b % ctx.world == ctx.rank) write_and_mark_owned(ctx, 0, b);
  write_shared(ctx, 0, kBlocks - 1);
  for (int64_t b = 0; b < 3; ++b)
    if (b % ctx.world == ctx.rank) write_and_mark_owned(ctx, 1, b);
  if (3 % ctx.world == ctx.rank) write_owned(ctx, 1, 3, static_cast<int>(ctx.layout.layers.size()));
  write_shared(ctx, 1, kBlocks - 1);
  ckpt.close();
  return 0;
}

int run_crash(const std::string& path, Ctx& ctx, bool kill) {
  GPTQD_CHECK(ctx.world == 2, "crash mode needs 2 ranks, got {}", ctx.world);
  Checkpoint ckpt = Checkpoint::create(path, ctx.layout, MPI_COMM_WORLD);
  ctx.ckpt = &ckpt;
  if (ctx.rank == 0) {
    for (int64_t b : {0, 2, 4}) write_and_mark_owned(ctx, 0, b);
    const int done = 1;
    MPI_Send(&done, 1, MPI_INT, 1, 0, MPI_COMM_WORLD);
    // Wait for a peer that never comes: mpirun must end this rank when rank 1 dies.
    MPI_Barrier(MPI_COMM_WORLD);
    return 1;
  }
  for (int64_t b : {1, 3}) write_and_mark_owned(ctx, 0, b);
  write_owned(ctx, 0, 5, 1);  // the block in flight: one layer of three
  record_line(ctx, "partial w4g4 5");
  int done = 0;
  MPI_Recv(&done, 1, MPI_INT, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  std::fflush(nullptr);
  if (!kill) throw Error("deliberate failure with the checkpoint open");
  std::raise(SIGKILL);
  return 1;
}

int run_resume(const std::string& path, Ctx& ctx) {
  Checkpoint ckpt = Checkpoint::open_resume(path, ctx.layout, MPI_COMM_WORLD);
  ctx.ckpt = &ckpt;
  for (int ri = 0; ri < static_cast<int>(ctx.layout.runs.size()); ++ri) {
    const auto done = ckpt.completion(ctx.layout.runs[ri].name);
    for (int64_t b = 0; b < kBlocks - 1; ++b)
      if (!done[b] && b % ctx.world == ctx.rank) write_and_mark_owned(ctx, ri, b);
    if (!done[kBlocks - 1]) write_shared(ctx, ri, kBlocks - 1);
  }
  ckpt.close();
  return 0;
}

int run_resume_mismatch(const std::string& path, Ctx& ctx) {
  CkptLayout other = ctx.layout;
  other.fingerprint = "some-other-job";
  try {
    Checkpoint ckpt = Checkpoint::open_resume(path, other, MPI_COMM_WORLD);
  } catch (const InputError& e) {
    if (ctx.rank == 0) std::printf("refused: %s\n", e.what());
    return 0;
  }
  if (ctx.rank == 0) std::printf("open_resume accepted a different fingerprint\n");
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  Ctx ctx{nullptr, test_layout(), 0, 1, ""};
  MPI_Comm_rank(MPI_COMM_WORLD, &ctx.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ctx.world);
  const std::string mode = argc > 1 ? argv[1] : "";
  const std::string path = argc > 2 ? argv[2] : "";
  int rc = 2;
  try {
    if (mode == "parallel" && argc == 3) {
      rc = run_parallel(path, ctx);
    } else if ((mode == "crash" || mode == "crash-throw") && argc == 4) {
      ctx.record = argv[3];
      rc = run_crash(path, ctx, mode == "crash");
    } else if (mode == "resume" && argc == 3) {
      rc = run_resume(path, ctx);
    } else if (mode == "resume-mismatch" && argc == 3) {
      rc = run_resume_mismatch(path, ctx);
    } else if (mode == "inspect" && argc == 3) {
      if (ctx.rank == 0) std::fputs(inspect_checkpoint(path).c_str(), stdout);
      rc = 0;
    } else if (ctx.rank == 0) {
      std::fprintf(stderr,
                   "usage: ckpt_writer parallel|resume|resume-mismatch|inspect FILE\n"
                   "       ckpt_writer crash|crash-throw FILE RECORD\n");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "[rank %d] ckpt_writer: %s\n", ctx.rank, e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  std::fflush(stdout);
  MPI_Finalize();
  return rc;
}
