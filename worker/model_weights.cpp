#include "worker/model_weights.h"

#include <algorithm>

#include "base/check.h"

namespace gptqd {
namespace {

Buffer load(Backend& be, const HfModel& m, const TensorSpec& t) {
  return Buffer(be, m.read_f32(t.name, t.shape));
}

// Floats converted to bf16 per step of set_linear_weights: bounds its device scratch (64 MiB).
constexpr int64_t kBf16Chunk = int64_t{1} << 24;

}  // namespace

void set_linear_weights(Backend& be, LinearWeights& lw, const float* weights) {
  const int64_t n = lw.out * lw.in;
  if (be.precision() != Precision::kFast) {
    if (lw.w.size() != n) lw.w = Buffer(be, n);
    lw.w16 = Bf16Buffer();
    be.to_device(lw.w.data(), weights, n);
    return;
  }
  if (lw.w16.size() != n) lw.w16 = Bf16Buffer(be, n);
  lw.w = Buffer();
  Buffer chunk(be, std::min(n, kBf16Chunk));
  for (int64_t off = 0; off < n; off += kBf16Chunk) {
    const int64_t c = std::min(kBf16Chunk, n - off);
    be.to_device(chunk.data(), weights + off, c);
    be.to_bf16(c, chunk.data(), lw.w16.data() + off);
  }
}

void set_linear_weights(Backend& be, LinearWeights& lw, const std::vector<float>& weights) {
  GPTQD_CHECK(static_cast<int64_t>(weights.size()) == lw.out * lw.in,
              "replacement weights: {} values for a {}x{} layer", weights.size(), lw.out, lw.in);
  set_linear_weights(be, lw, weights.data());
}

std::vector<float> read_block_tensor(const HfModel& m, const TensorSpec& t, ckpt::Hash64* digest) {
  if (digest == nullptr) return m.read_f32(t.name, t.shape);
  const TensorInfo& info = m.info(t.name);
  digest->str(dtype_name(info.dtype)).u64(info.shape.size());
  for (int64_t d : info.shape) digest->u64(static_cast<uint64_t>(d));
  return m.read_f32(t.name, t.shape, [digest](const uint8_t* p, size_t n) { digest->bytes(p, n); });
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
    set_linear_weights(be, lw, upload[wi]);
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
  ckpt::Hash64 digest;
  for (size_t i = 0; i < specs.size(); ++i) {
    host[i] = read_block_tensor(m, specs[i], &digest);
    upload[i] = host[i].data();
  }
  BlockWeights w = assemble_block_weights(be, spec.block(block), std::move(host), upload);
  w.digest = digest.digest();
  return w;
}

EmbeddingWeights load_embedding_weights(Backend& be, const HfModel& m, const ModelSpec& spec) {
  EmbeddingWeights e;
  ckpt::Hash64 digest;
  for (const TensorSpec& t : spec.embedding)
    e.tensors.push_back(Buffer(be, read_block_tensor(m, t, &digest)));
  e.digest = digest.digest();
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
