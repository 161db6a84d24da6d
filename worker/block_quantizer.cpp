#include "worker/block_quantizer.h"

#include <chrono>
#include <memory>

#include "io/bloom_names.h"
#include "kernels/check.h"
#include "kernels/log.h"

namespace gptqd {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Accumulates the Hessians of the linears in `which` over one forward of all samples.
std::array<std::unique_ptr<HessianAccumulator>, kNumLinears> accumulate_hessians(
    Backend& be, const BloomDims& d, const BlockWeights& w, Activations& act, int64_t micro,
    BlockWorkspace& ws, const std::array<bool, kNumLinears>& which) {
  std::array<std::unique_ptr<HessianAccumulator>, kNumLinears> acc;
  int last = -1;
  for (int i = 0; i < kNumLinears; ++i) {
    if (!which[i]) continue;
    acc[i] = std::make_unique<HessianAccumulator>(be, w.linears[i].in);
    last = i;
  }
  LinearCapture capture = [&](int idx, const float* x, int64_t tokens, int64_t samples) {
    if (acc[idx]) acc[idx]->add(x, tokens, samples);
  };
  block_forward_all(be, d, w, act.nseq, act.seq, micro, act.h.data(), act.scratch.data(), ws, capture,
                    last);
  return acc;
}

LinearResult quantize_linear(Backend& be, LinearWeights& lw, HessianAccumulator& acc,
                             const GptqOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<float> h = acc.to_host();
  LinearResult r;
  r.q = gptq_quantize(be, lw.host_w.data(), lw.out, lw.in, h.data(), opt);
  r.stats.seconds = seconds_since(t0);
  const QuantizedLayer rtn = rtn_quantize(be, lw.host_w.data(), lw.out, lw.in, opt);
  r.stats.gptq_loss = r.q.loss;
  r.stats.gptq_err = output_error(be, lw.host_w.data(), r.q.dequant.data(), lw.out, lw.in, h.data());
  r.stats.rtn_err = output_error(be, lw.host_w.data(), rtn.dequant.data(), lw.out, lw.in, h.data());
  r.stats.damp = r.q.damp_used;
  be.to_device(lw.w.data(), r.q.dequant.data(), lw.out * lw.in);
  return r;
}

}  // namespace

GptqOptions gptq_options(const QuantConfig& q, const std::string& label) {
  GptqOptions o;
  o.bits = q.bits;
  o.group_size = q.group_size;
  o.sym = q.sym;
  o.act_order = q.act_order;
  o.static_groups = q.static_groups;
  o.damp_percent = q.damp_percent;
  o.block_size = q.block_size;
  o.mse_clip = q.mse_clip;
  o.label = label;
  return o;
}

BlockResult quantize_block(Backend& be, const BloomDims& d, BlockWeights& w, Activations& act,
                           int64_t micro, BlockWorkspace& ws, const QuantConfig& q, int64_t block) {
  BlockResult result;
  auto label = [&](int i) {
    return fmt::format("run {} block {} {}", q.name, block, block_linears()[i].module);
  };
  if (q.true_sequential) {
    // Each linear's Hessian sees the outputs of the already-quantized ones before it.
    for (int i = 0; i < kNumLinears; ++i) {
      std::array<bool, kNumLinears> which{};
      which[i] = true;
      auto acc = accumulate_hessians(be, d, w, act, micro, ws, which);
      result[i] = quantize_linear(be, w.linears[i], *acc[i], gptq_options(q, label(i)));
    }
  } else {
    auto acc = accumulate_hessians(be, d, w, act, micro, ws, {true, true, true, true});
    for (int i = 0; i < kNumLinears; ++i) {
      result[i] = quantize_linear(be, w.linears[i], *acc[i], gptq_options(q, label(i)));
    }
  }
  block_forward_all(be, d, w, act.nseq, act.seq, micro, act.h.data(), act.h.data(), ws);
  return result;
}

void forward_quantized_block(Backend& be, const BloomDims& d, BlockWeights& w,
                             const std::array<std::vector<float>, kNumLinears>& dequant,
                             Activations& act, int64_t micro, BlockWorkspace& ws) {
  for (int i = 0; i < kNumLinears; ++i) {
    LinearWeights& lw = w.linears[i];
    GPTQD_CHECK(static_cast<int64_t>(dequant[i].size()) == lw.out * lw.in,
                "checkpoint layer {} has {} weights, expected {}", block_linears()[i].module,
                dequant[i].size(), lw.out * lw.in);
    be.to_device(lw.w.data(), dequant[i].data(), lw.out * lw.in);
  }
  block_forward_all(be, d, w, act.nseq, act.seq, micro, act.h.data(), act.h.data(), ws);
}

}  // namespace gptqd
