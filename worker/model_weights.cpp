#include "worker/model_weights.h"

#include "kernels/check.h"

namespace gptqd {
namespace {

Buffer load(Backend& be, const HfModel& m, const TensorSpec& t) {
  return Buffer(be, m.read_f32(t.name, t.shape));
}

}  // namespace

std::vector<float> read_block_tensor(const HfModel& m, const TensorSpec& t) {
  return m.read_f32(t.name, t.shape);
}

BlockWeights assemble_block_weights(Backend& be, const ModelSpec& spec, BlockHostTensors host,
                                    const std::vector<const float*>& upload) {
  const std::vector<TensorSpec> specs = spec.block_tensors(0);
  GPTQD_CHECK(host.size() == specs.size() && upload.size() == specs.size(),
              "block of {} tensors assembled from {} host vectors and {} uploads", specs.size(),
              host.size(), upload.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    GPTQD_CHECK(static_cast<int64_t>(host[i].size()) == specs[i].numel(),
                "block tensor {}: {} host values for shape {}", specs[i].name, host[i].size(),
                shape_string(specs[i].shape));
  }
  auto upload_of = [&](size_t i) {
    Buffer buf(be, specs[i].numel());
    if (buf.size() > 0) be.to_device(buf.data(), upload[i], buf.size());
    return buf;
  };
  BlockWeights w;
  for (size_t i = 0; i < spec.block_norms.size(); ++i) w.norms.push_back(upload_of(i));
  w.linears.resize(spec.linears.size());
  for (size_t i = 0; i < spec.linears.size(); ++i) {
    const LinearSpec& ls = spec.linears[i];
    const size_t wi = static_cast<size_t>(spec.linear_weight_index(static_cast<int>(i)));
    LinearWeights& lw = w.linears[i];
    lw.out = ls.out;
    lw.in = ls.in;
    lw.w = upload_of(wi);
    lw.host_w = std::move(host[wi]);
    if (ls.bias) {
      lw.b = upload_of(wi + 1);
      lw.host_b = std::move(host[wi + 1]);
    }
  }
  return w;
}

BlockWeights load_block_weights(Backend& be, const HfModel& m, const ModelSpec& spec,
                                int64_t block) {
  const std::vector<TensorSpec> specs = spec.block_tensors(block);
  BlockHostTensors host(specs.size());
  std::vector<const float*> upload(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    host[i] = read_block_tensor(m, specs[i]);
    upload[i] = host[i].data();
  }
  return assemble_block_weights(be, spec, std::move(host), upload);
}

EmbeddingWeights load_embedding_weights(Backend& be, const HfModel& m, const ModelSpec& spec) {
  EmbeddingWeights e;
  for (const TensorSpec& t : spec.embedding) e.tensors.push_back(load(be, m, t));
  return e;
}

FinalNormWeights load_final_norm_weights(Backend& be, const HfModel& m, const ModelSpec& spec) {
  FinalNormWeights f;
  for (const TensorSpec& t : spec.final_norm) f.norm.push_back(load(be, m, t));
  if (!spec.lm_head.empty()) f.lm_head = load(be, m, {spec.lm_head, {spec.vocab, spec.hidden}});
  return f;
}

void validate_model_tensors(const HfModel& m, const ModelSpec&) {
  // Presence of every name was checked by HfModel::open; this reads every shard's
  // header (no tensor data) and checks each shape against config.json.
  m.validate_shapes();
}

}  // namespace gptqd
