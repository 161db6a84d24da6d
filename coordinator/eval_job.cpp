#include "coordinator/eval_job.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <thread>

#include "base/check.h"
#include "base/log.h"
#include "base/timing.h"
#include "coordinator/calibration_input.h"
#include "coordinator/collective.h"
#include "coordinator/execution.h"
#include "io/checkpoint/checkpoint.h"
#include "io/job/calibration.h"
#include "io/job/job_config.h"
#include "io/model/hf_model.h"
#include "io/tokenizer/tokenizer.h"
#include "kernels/cuda/cuda_info.h"
#include "worker/block_quantizer.h"
#include "worker/gptq.h"
#include "worker/memory_model.h"
#include "worker/model_weights.h"
#include "worker/perplexity.h"

namespace gptqd {
namespace {

// "2-5, 7": block lists in error messages.
std::string ranges(const std::vector<int64_t>& v) {
  std::string out;
  for (size_t i = 0; i < v.size();) {
    size_t j = i;
    while (j + 1 < v.size() && v[j + 1] == v[j] + 1) ++j;
    if (!out.empty()) out += ", ";
    out += j == i ? std::to_string(v[i]) : fmt::format("{}-{}", v[i], v[j]);
    i = j + 1;
  }
  return out;
}

// The runs to evaluate: all of the checkpoint's, or the one named by --run.
std::vector<CkptRunSpec> select_runs(const Checkpoint& ckpt, const std::string& wanted) {
  const CkptLayout& l = ckpt.layout();
  if (wanted.empty()) return l.runs;
  const int i = run_index(l, wanted);
  if (i < 0) {
    std::string names;
    for (const CkptRunSpec& r : l.runs) names += (names.empty() ? "" : ", ") + r.name;
    throw InputError(
        fmt::format("--run {}: no such run in {} (it has: {})", wanted, ckpt.path(), names));
  }
  return {l.runs[static_cast<size_t>(i)]};
}

// The checkpoint must describe this model: same blocks and layer shapes, every selected run
// complete, and the biases it stored (copied from the model at quantization time) equal to
// the model's, which catches a checkpoint of other weights with the same shapes.
void check_checkpoint(const Checkpoint& ckpt, const HfModel& model, const ModelSpec& d,
                      const std::vector<CkptRunSpec>& runs) {
  const CkptLayout& l = ckpt.layout();
  GPTQD_INPUT_CHECK(l.n_blocks == d.n_layer, "checkpoint {} has {} blocks but the model {} has {}",
                    ckpt.path(), l.n_blocks, model.dir(), d.n_layer);
  GPTQD_INPUT_CHECK(l.family == family_name(d.family),
                    "checkpoint {} holds a {} model but {} is a {} model", ckpt.path(), l.family,
                    model.dir(), family_name(d.family));
  // Every block when they are of several kinds (which layers each holds); else block 0 stands
  // for all.
  const int64_t blocks = d.mixed() ? d.n_layer : std::min<int64_t>(1, d.n_layer);
  for (int64_t b = 0; b < blocks; ++b) {
    for (const LinearSpec& ls : d.block(b).linears) {
      const int k = layer_index(l, ls.module);
      GPTQD_INPUT_CHECK(k >= 0, "checkpoint {} has no layer {}", ckpt.path(), ls.module);
      GPTQD_INPUT_CHECK(block_has_layer(l, b, k),
                        "checkpoint {}: block {} has no layer {}, which the model {} has there",
                        ckpt.path(), b, ls.module, model.dir());
      const CkptLayerShape& s = l.layers[static_cast<size_t>(k)];
      GPTQD_INPUT_CHECK(s.rows == ls.out && s.cols == ls.in,
                        "checkpoint {}: layer {} is {}x{} but the model {} has {}x{}", ckpt.path(),
                        ls.module, s.rows, s.cols, model.dir(), ls.out, ls.in);
    }
  }
  for (const CkptRunSpec& r : runs) {
    const std::vector<uint8_t> done = ckpt.completion(r.name);
    std::vector<int64_t> missing;
    for (int64_t b = 0; b < static_cast<int64_t>(done.size()); ++b) {
      if (done[static_cast<size_t>(b)] == 0) missing.push_back(b);
    }
    GPTQD_INPUT_CHECK(
        missing.empty(),
        "run {} in {} is incomplete: block(s) {} of {} missing (finish it with gptqd quantize)",
        r.name, ckpt.path(), ranges(missing), done.size());
  }
  if (runs.empty()) return;
  // The first layer with a bias (families without biases have nothing to compare here).
  for (const LinearSpec& ls : d.linears) {
    if (!ls.bias) continue;
    const std::vector<float> bias =
        model.read_f32(d.block_tensor_name(0, ls.module + ".bias"), {ls.out});
    const LayerData stored = ckpt.read_layer(runs.front().name, 0, ls.module);
    GPTQD_INPUT_CHECK(
        stored.bias == bias,
        "checkpoint {} was made from other weights than the model {} (block 0 {} bias differs)",
        ckpt.path(), model.dir(), ls.module);
    break;
  }
  if (l.model_config_json != model.config().json) {
    GPTQD_LOG_WARN("checkpoint {}: its config.json differs from {}'s", ckpt.path(), model.dir());
  }
}

// Everything the evaluation of one model variant needs, the same on every rank.
struct EvalSetup {
  JobConfig job;
  std::unique_ptr<HfModel> model;
  ModelSpec dims;
  std::unique_ptr<Checkpoint> ckpt;
  std::vector<CkptRunSpec> runs;
  std::string tokenizer_path;
  // The checkpoint's weights_digest ([n_blocks + 1], the embedding last); empty when it has none.
  std::vector<uint64_t> digests;
};

// The weights eval reads must be those the checkpoint was quantized from: block `index`'s (the
// embedding's when index is n_blocks) digest as read against the stored one (0: not known, an
// older writer). Throws InputError naming the block.
void check_weights(const EvalSetup& s, int64_t index, uint64_t digest) {
  if (s.digests.empty()) return;
  const uint64_t stored = s.digests.at(static_cast<size_t>(index));
  if (stored == 0 || stored == digest) return;
  const std::string what = index == s.dims.n_layer
                               ? std::string("the embedding differs")
                               : fmt::format("block {}'s weights differ", index);
  throw InputError(fmt::format(
      "checkpoint {} was quantized from other weights than model {} holds: {} (weights digest "
      "{:016x}, {:016x} stored); evaluate it with the model it was made from, or quantize this "
      "one (gptqd quantize --restart)",
      s.ckpt->path(), s.model->dir(), what, digest, stored));
}

// Perplexity of one variant: this rank's windows, the losses gathered on rank 0 in window
// order, the result broadcast. Returns false (after one error line) if any rank failed.
bool evaluate(MPI_Comm comm, Backend& be, const EvalSetup& s, const std::vector<int32_t>& windows,
              int64_t nwin, const std::string& label, const BlockWeightsHook& hook, double* ppl) {
  int rank = 0, world = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &world);
  const int64_t seqlen = s.job.eval.seqlen;
  auto first_of = [&](int r) { return nwin * r / world; };
  const int64_t w0 = first_of(rank), w1 = first_of(rank + 1);
  const auto t0 = SteadyClock::now();
  std::vector<double> mine;
  if (!collective_try(comm, [&] {
        const std::vector<int32_t> part(windows.begin() + w0 * seqlen,
                                        windows.begin() + w1 * seqlen);
        WindowNllOptions opt;
        opt.hook = [&](int64_t block, BlockWeights& w) {
          check_weights(s, block, w.digest);
          if (hook) hook(block, w);
        };
        opt.embedding_check = [&](uint64_t digest) { check_weights(s, s.dims.n_layer, digest); };
        mine = window_nlls(be, *s.model, s.dims, part, seqlen, opt);
      })) {
    return false;
  }
  std::vector<int> counts(static_cast<size_t>(world)), displs(static_cast<size_t>(world));
  for (int r = 0; r < world; ++r) {
    displs[r] = static_cast<int>(first_of(r));
    counts[r] = static_cast<int>(first_of(r + 1) - first_of(r));
  }
  std::vector<double> all(rank == 0 ? static_cast<size_t>(nwin) : 0);
  MPI_Gatherv(mine.data(), static_cast<int>(mine.size()), MPI_DOUBLE, all.data(), counts.data(),
              displs.data(), MPI_DOUBLE, 0, comm);
  if (rank == 0) {
    *ppl = perplexity_from_nlls(all);
    const double sec = seconds_since(t0);
    GPTQD_LOG_INFO("eval {}: perplexity {:.4f} ({} windows on {} rank(s), {:.1f} s, {:.0f} tok/s)",
                   label, *ppl, nwin, world, sec, nwin * seqlen / std::max(sec, 1e-9));
  }
  MPI_Bcast(ppl, 1, MPI_DOUBLE, 0, comm);
  return true;
}

// One rank's memory for window_nlls over `windows` windows of eval.seqlen (one pass, micro-
// batches of WindowNllOptions' default size), from the memory model's terms that a forward
// holds (worker/memory_model.h: no Hessians, no GPTQ) plus a micro-batch's logits (seqlen x
// vocab per window), checked before any work against the host memory of this node's ranks
// (CPU backend) or the GPU's free memory: a too long eval.seqlen is refused by name instead of
// ending in std::bad_alloc inside the forward.
void check_eval_memory(const EvalSetup& s, int64_t windows, Execution& exec, int ranks_here) {
  if (windows == 0) return;  // a rank without windows runs no forward
  const int64_t seqlen = s.job.eval.seqlen;
  MemoryWorkload w;
  w.samples = windows;
  w.seqlen = seqlen;
  w.micro_batch = std::max<int64_t>(1, WindowNllOptions{}.micro_tokens / seqlen);
  w.embedding = true;
  const DeviceMemory d = device_memory(s.dims, w);
  const double logits = 4.0 * static_cast<double>(w.micro_batch) * static_cast<double>(seqlen) *
                        static_cast<double>(s.dims.vocab);
  const double need = static_cast<double>(d.activations) +
                      std::max(static_cast<double>(d.embedding),
                               static_cast<double>(d.block_weights + d.workspace + d.scores)) +
                      logits;
  const double gib = 1 << 30;
  if (exec.on_gpu()) {
    const uint64_t free_bytes = cuda_backend_free_bytes(exec.backend());
    GPTQD_INPUT_CHECK(free_bytes == 0 || need <= static_cast<double>(free_bytes),
                      "eval.seqlen {}: the evaluation needs {:.2f} GiB of GPU memory per rank "
                      "({:.2f} GiB of attention scores) but {:.2f} GiB are free on {}: lower "
                      "eval.seqlen or use more ranks",
                      seqlen, need / gib, static_cast<double>(d.scores) / gib,
                      static_cast<double>(free_bytes) / gib, exec.backend().name());
    return;
  }
  const uint64_t avail = host_available_bytes();
  GPTQD_INPUT_CHECK(avail == 0 || need * ranks_here <= static_cast<double>(avail),
                    "eval.seqlen {}: the evaluation needs {:.2f} GiB of host memory on this node "
                    "({} rank(s) of {:.2f} GiB, {:.2f} GiB of it attention scores) but {:.2f} GiB "
                    "are available: lower eval.seqlen or use more nodes",
                    seqlen, need * ranks_here / gib, ranks_here, need / gib,
                    static_cast<double>(d.scores) / gib, static_cast<double>(avail) / gib);
}

}  // namespace

int run_eval(const EvalOptions& opt, MPI_Comm comm, EvalReport* report) {
  int rank = 0, world = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &world);

  // 1. Every rank validates the job, the model and the checkpoint.
  EvalSetup s;
  if (!collective_try(comm, [&] {
        s.job = load_job_config(opt.config_path);
        GPTQD_INPUT_CHECK(!s.job.eval.text.empty(),
                          "{}: eval.text is not set: there is no text to evaluate on",
                          opt.config_path);
        GPTQD_INPUT_CHECK(
            s.job.eval.seqlen >= 2,
            "{}: eval.seqlen {} must be at least 2 (a window of one token predicts nothing)",
            opt.config_path, s.job.eval.seqlen);
        s.model = std::make_unique<HfModel>(HfModel::open(s.job.model_path));
        s.dims = s.model->spec();
        s.dims.check_seqlen(s.job.eval.seqlen, "eval.seqlen");
        validate_model_tensors(*s.model, s.dims);
        s.tokenizer_path = (std::filesystem::path(s.job.model_path) / "tokenizer.json").string();
        GPTQD_INPUT_CHECK(std::filesystem::exists(s.tokenizer_path),
                          "eval.text needs the model's tokenizer: {} does not exist",
                          s.tokenizer_path);
        std::error_code ec;  // a path the OS cannot look up is an input error, not a throw
        const bool ckpt_exists = std::filesystem::exists(s.job.checkpoint, ec);
        GPTQD_INPUT_CHECK(!ec, "output.checkpoint {}: {}", s.job.checkpoint, ec.message());
        GPTQD_INPUT_CHECK(ckpt_exists,
                          "output.checkpoint {} does not exist: run gptqd quantize {} first",
                          s.job.checkpoint, opt.config_path);
        s.ckpt = std::make_unique<Checkpoint>(Checkpoint::open_read(s.job.checkpoint));
        s.runs = select_runs(*s.ckpt, opt.run);
        check_checkpoint(*s.ckpt, *s.model, s.dims, s.runs);
        s.digests = s.ckpt->weights_digests();
      })) {
    return 1;
  }
  if (rank == 0 && s.digests.empty()) {
    GPTQD_LOG_WARN(
        "checkpoint {} has no weights digests (made by a gptqd before them): the model's weights "
        "are not checked against those it was quantized from",
        s.job.checkpoint);
  }

  if (rank == 0) {
    for (const QuantConfig& q : s.job.runs) {
      if (run_index(s.ckpt->layout(), q.name) < 0) {
        GPTQD_LOG_WARN("run {} of {} is not in {}: quantize it first to evaluate it", q.name,
                       opt.config_path, s.job.checkpoint);
      }
    }
  }

  // 2. Rank 0 tokenizes the eval text and cuts the windows; everyone gets them.
  // As transformers' tokenizer(text) does (the GPTQ paper's evaluation): the text as one
  // string with the post-processor's special tokens (BOS for Llama 3, </s> for OPT, none for
  // BLOOM and SmolLM2); the table's header says which.
  std::vector<int32_t> windows;
  int64_t text_tokens = 0;
  std::string specials;
  if (!collective_try(comm, [&] {
        if (rank != 0) return;
        const Tokenizer tok = Tokenizer::load(s.tokenizer_path);
        specials = tok.special_tokens_summary();
        const std::string what = fmt::format("eval.text '{}'", s.job.eval.text);
        const std::vector<int32_t> ids =
            tok.encode_with_specials(read_text_file(s.job.eval.text, "eval.text"), what);
        check_tokenizer_ids(ids, s.dims.vocab, s.tokenizer_path, what);
        text_tokens = static_cast<int64_t>(ids.size());
        int64_t n = 0;
        try {
          windows = eval_windows(ids, s.job.eval.seqlen, &n);
        } catch (const InputError& e) {
          throw InputError(fmt::format("eval.text {}: {}", s.job.eval.text, e.what()));
        }
      })) {
    return 1;
  }
  broadcast(comm, 0, &windows);
  MPI_Bcast(&text_tokens, 1, MPI_INT64_T, 0, comm);
  const int64_t nwin = static_cast<int64_t>(windows.size()) / s.job.eval.seqlen;

  EvalReport rep;
  rep.model = s.job.model_path;
  rep.text = s.job.eval.text;
  rep.checkpoint = s.job.checkpoint;
  rep.seqlen = s.job.eval.seqlen;
  rep.windows = nwin;
  rep.text_tokens = text_tokens;
  rep.specials = specials;  // rank 0's; only rank 0 prints it
  if (rank == 0) {
    GPTQD_LOG_INFO(
        "eval: {} ({} tokens) in {} windows of {} on {} rank(s); model {}, checkpoint {}, {} "
        "run(s)",
        rep.text, text_tokens, nwin, rep.seqlen, world, rep.model, rep.checkpoint, s.runs.size());
  }

  // 3. The variants, one at a time.
  std::unique_ptr<Execution> exec;
  if (!collective_try(comm, [&] {
        exec =
            std::make_unique<Execution>(s.job.parallel.device, threads_per_rank(opt.threads, comm),
                                        comm, s.job.parallel.transport);
      })) {
    return 1;
  }
  Backend& b = exec->backend();
  if (rank == 0) log_backend_libraries(b);
  const int64_t my_windows = nwin * (rank + 1) / world - nwin * rank / world;  // as evaluate()
  if (!collective_try(comm,
                      [&] { check_eval_memory(s, my_windows, *exec, local_rank_count(comm)); }))
    return 1;

  EvalRow orig;
  orig.method = "original";
  if (!evaluate(comm, b, s, windows, nwin, "original", {}, &orig.perplexity)) return 1;
  rep.rows.push_back(orig);
  for (const CkptRunSpec& r : s.runs) {
    EvalRow rtn{r.name, r.bits, r.group_size, "RTN", 0};
    auto rtn_hook = [&](int64_t block, BlockWeights& w) {
      for (size_t i = 0; i < w.linears.size(); ++i) {
        LinearWeights& lw = w.linears[i];
        const std::string label =
            fmt::format("RTN {} block {} {}", r.name, block, s.dims.block(block).linears[i].module);
        set_linear_weights(
            b, lw,
            rtn_quantize(b, lw.host_w.data(), lw.out, lw.in, gptq_options(r, label)).dequant);
      }
    };
    if (!evaluate(comm, b, s, windows, nwin, fmt::format("[{}] RTN", r.name), rtn_hook,
                  &rtn.perplexity))
      return 1;
    rep.rows.push_back(rtn);

    EvalRow gptq{r.name, r.bits, r.group_size, "GPTQ", 0};
    auto gptq_hook = [&](int64_t block, BlockWeights& w) {
      for (size_t i = 0; i < w.linears.size(); ++i) {
        set_linear_weights(
            b, w.linears[i],
            s.ckpt->dequantize(r.name, block, s.dims.block(block).linears[i].module));
      }
    };
    if (!evaluate(comm, b, s, windows, nwin, fmt::format("[{}] GPTQ", r.name), gptq_hook,
                  &gptq.perplexity)) {
      return 1;
    }
    rep.rows.push_back(gptq);
  }
  *report = std::move(rep);
  return 0;
}

std::string format_eval_table(const EvalReport& r) {
  std::string out =
      fmt::format("perplexity on {}: {} windows of {} tokens ({} tokens in the text), model {}\n",
                  r.text, r.windows, r.seqlen, r.text_tokens, r.model);
  if (!r.specials.empty()) out += fmt::format("tokenizer: {}\n", r.specials);
  double base = NAN;
  for (const EvalRow& row : r.rows) {
    if (row.method == "original") base = row.perplexity;
  }
  size_t wrun = 3;
  for (const EvalRow& row : r.rows) wrun = std::max(wrun, row.run.size());
  out += fmt::format("{:<{}}  {:>4}  {:>5}  {:<8}  {:>12}  {}\n", "run", wrun, "bits", "group",
                     "method", "perplexity", "delta vs original");
  for (const EvalRow& row : r.rows) {
    const bool orig = row.method == "original";
    const std::string delta = orig || std::isnan(base)
                                  ? ""
                                  : fmt::format("{:+.4f} ({:+.2f}%)", row.perplexity - base,
                                                100.0 * (row.perplexity - base) / base);
    std::string line =
        fmt::format("{:<{}}  {:>4}  {:>5}  {:<8}  {:>12.4f}  {}", orig ? "-" : row.run, wrun,
                    orig ? "-" : std::to_string(row.bits),
                    orig ? "-" : std::to_string(row.group_size), row.method, row.perplexity, delta);
    line.erase(line.find_last_not_of(' ') + 1);
    out += line + "\n";
  }
  return out;
}

}  // namespace gptqd
