#include "worker/bloom_weights.h"

#include "io/bloom_names.h"
#include "kernels/check.h"

namespace gptqd {
namespace {

Buffer load(Backend& be, const HfModel& m, const std::string& name, std::vector<int64_t> shape) {
  return Buffer(be, m.read_f32(name, shape));
}

}  // namespace

std::array<std::array<int64_t, 2>, kNumLinears> linear_shapes(const BloomDims& d) {
  return {{{3 * d.hidden, d.hidden}, {d.hidden, d.hidden}, {d.ffn, d.hidden}, {d.hidden, d.ffn}}};
}

int64_t BlockTensorSpec::numel() const {
  int64_t n = 1;
  for (int64_t dim : shape) n *= dim;
  return n;
}

std::array<BlockTensorSpec, kNumBlockTensors> block_tensor_specs(const BloomDims& d) {
  std::array<BlockTensorSpec, kNumBlockTensors> specs;
  for (int i = 0; i < kNumBlockTensors; ++i) {
    specs[i].tensor = all_block_tensors()[i];
    specs[i].shape = {d.hidden};  // the layer norms; the linears' entries follow
  }
  const auto shapes = linear_shapes(d);
  for (int i = 0; i < kNumLinears; ++i) {
    const LinearName& ln = block_linears()[i];
    specs[static_cast<int>(ln.weight)].shape = {shapes[i][0], shapes[i][1]};
    specs[static_cast<int>(ln.bias)].shape = {shapes[i][0]};
  }
  return specs;
}

std::vector<float> read_block_tensor(const HfModel& m, int64_t block, const BlockTensorSpec& spec) {
  return m.read_f32(block_tensor_name(block, spec.tensor), spec.shape);
}

BlockWeights assemble_block_weights(Backend& be, const BloomDims& d, BlockHostTensors host,
                                    const std::array<const float*, kNumBlockTensors>& upload) {
  const auto specs = block_tensor_specs(d);
  for (int i = 0; i < kNumBlockTensors; ++i) {
    GPTQD_CHECK(static_cast<int64_t>(host[i].size()) == specs[i].numel(),
                "block tensor {}: {} host values for shape {}",
                block_tensor_suffix(specs[i].tensor), host[i].size(), shape_string(specs[i].shape));
  }
  auto upload_of = [&](BlockTensor t) {
    const int i = static_cast<int>(t);
    Buffer buf(be, specs[i].numel());
    if (buf.size() > 0) be.to_device(buf.data(), upload[i], buf.size());
    return buf;
  };
  BlockWeights w;
  w.ln_in_w = upload_of(BlockTensor::InputLnWeight);
  w.ln_in_b = upload_of(BlockTensor::InputLnBias);
  w.ln_post_w = upload_of(BlockTensor::PostLnWeight);
  w.ln_post_b = upload_of(BlockTensor::PostLnBias);
  const auto shapes = linear_shapes(d);
  for (int i = 0; i < kNumLinears; ++i) {
    const LinearName& ln = block_linears()[i];
    LinearWeights& lw = w.linears[i];
    lw.out = shapes[i][0];
    lw.in = shapes[i][1];
    lw.w = upload_of(ln.weight);
    lw.b = upload_of(ln.bias);
    lw.host_w = std::move(host[static_cast<int>(ln.weight)]);
    lw.host_b = std::move(host[static_cast<int>(ln.bias)]);
  }
  return w;
}

BlockWeights load_block_weights(Backend& be, const HfModel& m, const BloomDims& d, int64_t block) {
  BlockHostTensors host;
  std::array<const float*, kNumBlockTensors> upload{};
  const auto specs = block_tensor_specs(d);
  for (int i = 0; i < kNumBlockTensors; ++i) {
    host[i] = read_block_tensor(m, block, specs[i]);
    upload[i] = host[i].data();
  }
  return assemble_block_weights(be, d, std::move(host), upload);
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
