#include "worker/bloom_weights.h"

#include "io/bloom_names.h"

namespace gptqd {
namespace {

Buffer load(Backend& be, const HfModel& m, const std::string& name, std::vector<int64_t> shape) {
  return Buffer(be, m.read_f32(name, shape));
}

}  // namespace

std::array<std::array<int64_t, 2>, kNumLinears> linear_shapes(const BloomDims& d) {
  return {{{3 * d.hidden, d.hidden}, {d.hidden, d.hidden}, {d.ffn, d.hidden}, {d.hidden, d.ffn}}};
}

BlockWeights load_block_weights(Backend& be, const HfModel& m, const BloomDims& d, int64_t block) {
  BlockWeights w;
  const int64_t h = d.hidden;
  w.ln_in_w = load(be, m, block_tensor_name(block, BlockTensor::InputLnWeight), {h});
  w.ln_in_b = load(be, m, block_tensor_name(block, BlockTensor::InputLnBias), {h});
  w.ln_post_w = load(be, m, block_tensor_name(block, BlockTensor::PostLnWeight), {h});
  w.ln_post_b = load(be, m, block_tensor_name(block, BlockTensor::PostLnBias), {h});
  const auto shapes = linear_shapes(d);
  for (int i = 0; i < kNumLinears; ++i) {
    const LinearName& ln = block_linears()[i];
    LinearWeights& lw = w.linears[i];
    lw.out = shapes[i][0];
    lw.in = shapes[i][1];
    lw.host_w = m.read_f32(block_tensor_name(block, ln.weight), {lw.out, lw.in});
    lw.host_b = m.read_f32(block_tensor_name(block, ln.bias), {lw.out});
    lw.w = Buffer(be, lw.host_w);
    lw.b = Buffer(be, lw.host_b);
  }
  return w;
}

EmbeddingWeights load_embedding_weights(Backend& be, const HfModel& m, const BloomDims& d) {
  EmbeddingWeights e;
  e.table = load(be, m, kWordEmbeddings, {d.vocab, d.hidden});
  e.ln_w = load(be, m, kEmbLnWeight, {d.hidden});
  e.ln_b = load(be, m, kEmbLnBias, {d.hidden});
  return e;
}

FinalNormWeights load_final_norm_weights(Backend& be, const HfModel& m, const BloomDims& d) {
  FinalNormWeights f;
  f.ln_w = load(be, m, kFinalLnWeight, {d.hidden});
  f.ln_b = load(be, m, kFinalLnBias, {d.hidden});
  return f;
}

void validate_model_tensors(const HfModel& m, const BloomDims&) {
  // Presence of every name was checked by HfModel::open; this reads every shard's
  // header (no tensor data) and checks each shape against config.json.
  m.validate_shapes();
}

}  // namespace gptqd
