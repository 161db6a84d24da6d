#include "worker/stage.h"

#include <chrono>

#include "io/bloom_names.h"
#include "kernels/log.h"
#include "worker/block_quantizer.h"
#include "worker/embedding.h"

namespace gptqd {
namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

LayerData to_layer_data(const LinearResult& r, const LinearWeights& lw) {
  LayerData d;
  d.codes = r.q.codes;
  d.scales = r.q.scales;
  d.zeros = r.q.zeros;
  d.g_idx = r.q.g_idx;
  d.perm = r.q.perm;
  d.bias = lw.host_b;
  d.stats = r.stats;
  return d;
}

// The input of the stage's first block for this run: embeddings or the previous stage.
void stage_input(Backend& be, Transport& tp, const StageInputs& in, const EmbeddingWeights* emb,
                 Activations& act) {
  if (in.role.prev_rank < 0) {
    embed_tokens(be, in.dims, *emb, *in.calib_tokens, act.h.data());
  } else {
    tp.recv(act.h.data(), act.h.size(), in.role.prev_rank, Tag::kActivations);
  }
}

}  // namespace

std::vector<LayerReport> run_stage(Backend& be, Transport& tp, Checkpoint& ckpt, const StageInputs& in) {
  const JobConfig& job = *in.job;
  const BloomDims& d = in.dims;
  const StageRole& role = in.role;
  Activations act;
  act.nseq = job.calibration.nsamples;
  act.seq = job.calibration.seqlen;
  act.h = Buffer(be, act.nseq * act.seq * d.hidden);
  act.scratch = Buffer(be, act.nseq * act.seq * d.hidden);
  BlockWorkspace ws(be, d, in.micro_batch * act.seq);

  std::unique_ptr<EmbeddingWeights> emb;
  if (role.prev_rank < 0) emb = std::make_unique<EmbeddingWeights>(load_embedding_weights(be, *in.model, d));

  std::vector<LayerReport> reports;
  const int64_t nblocks = role.end_block - role.first_block;
  const auto shapes = linear_shapes(d);
  for (size_t r = 0; r < job.runs.size(); ++r) {
    const QuantConfig& q = job.runs[r];
    const std::vector<uint8_t> done = ckpt.completion(q.name);
    stage_input(be, tp, in, emb.get(), act);
    const auto run_t0 = Clock::now();
    int64_t computed = 0;
    double computed_seconds = 0;
    for (int64_t b = role.first_block; b < role.end_block; ++b) {
      const auto t0 = Clock::now();
      BlockWeights w = load_block_weights(be, *in.model, d, b);
      const bool resumed = done[b] != 0;
      if (resumed) {
        std::array<std::vector<float>, kNumLinears> deq;
        for (int i = 0; i < kNumLinears; ++i) {
          deq[i] = ckpt.dequantize(q.name, b, block_linears()[i].module);
          LayerReport rep{static_cast<int32_t>(r), static_cast<int32_t>(b), i, shapes[i][0], shapes[i][1],
                          ckpt.read_layer(q.name, b, block_linears()[i].module).stats, 1};
          reports.push_back(rep);
        }
        forward_quantized_block(be, d, w, deq, act, in.micro_batch, ws);
      } else {
        const BlockResult res = quantize_block(be, d, w, act, in.micro_batch, ws, q, b);
        for (int i = 0; i < kNumLinears; ++i) {
          const LinearWeights& lw = w.linears[i];
          ckpt.write_layer(q.name, b, block_linears()[i].module, 0, lw.out, to_layer_data(res[i], lw));
          reports.push_back(LayerReport{static_cast<int32_t>(r), static_cast<int32_t>(b), i, lw.out, lw.in,
                                        res[i].stats, 0});
        }
        ckpt.mark_complete(q.name, b);
      }
      const double sec = since(t0);
      const int64_t index = b - role.first_block + 1;
      if (!resumed) {
        ++computed;
        computed_seconds += sec;
      }
      const int64_t left = nblocks - index;
      const double eta = computed > 0 ? computed_seconds / computed * left : 0.0;
      GPTQD_LOG_INFO("[{}] block {} ({}/{} of stage {}) {} in {:.2f} s, {:.0f} tok/s, stage ETA {:.1f} s",
                     q.name, b, index, nblocks, role.stage, resumed ? "resumed from checkpoint" : "quantized",
                     sec, act.nseq * act.seq / std::max(sec, 1e-9), eta);
    }
    if (role.next_rank >= 0) tp.send(act.h.data(), act.h.size(), role.next_rank, Tag::kActivations);
    GPTQD_LOG_INFO("[{}] stage {} done in {:.2f} s", q.name, role.stage, since(run_t0));
  }
  return reports;
}

}  // namespace gptqd
