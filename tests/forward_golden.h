// The golden-fixture harness of the forward fidelity tests (BLOOM's and every family's): a
// fixture model written by transformers (scripts/make_fixtures.py, make_family_fixtures.py)
// with its hidden state after every block and logits, and the C++ forward run on the same ids.
//
// Agreement is measured per tensor as the relative error
//   rel(a, ref) = max_i |a_i - ref_i| / max_i |ref_i|
// and must be <= kRelTol (fp32 throughout on both sides).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "base/check.h"
#include "io/job/calibration.h"
#include "io/model/hf_model.h"
#include "io/model/safetensors.h"
#include "kernels/buffer.h"
#include "worker/block_forward.h"
#include "worker/embedding.h"
#include "worker/model_weights.h"
#include "worker/perplexity.h"

namespace gptqd::test {

inline constexpr double kRelTol = 1e-4;

inline double rel_err(const std::vector<float>& a, const std::vector<float>& ref) {
  EXPECT_EQ(a.size(), ref.size());
  double diff = 0, scale = 0;
  for (size_t i = 0; i < std::min(a.size(), ref.size()); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - ref[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(ref[i])));
  }
  return scale > 0 ? diff / scale : diff;
}

// A fixture model with its golden outputs.
struct Golden {
  HfModel model;
  ModelSpec dims;
  SafetensorsFile ref;
  int64_t batch = 0, seq = 0;
  std::vector<int32_t> ids;

  // dir: a fixture directory (config.json, model.safetensors, forward.safetensors).
  explicit Golden(const std::string& dir)
      : model(HfModel::open(dir)),
        dims(model.spec()),
        ref(SafetensorsFile::open(dir + "/forward.safetensors")) {
    const TensorInfo* t = ref.find("input_ids");
    EXPECT_TRUE(t != nullptr && t->dtype == DType::I32 && t->shape.size() == 2);
    batch = t->shape[0];
    seq = t->shape[1];
    ids.resize(static_cast<size_t>(t->numel()));
    std::memcpy(ids.data(), ref.data(*t), ids.size() * sizeof(int32_t));
  }
  std::vector<float> tensor(const std::string& name) const { return ref.read_f32(name); }
};

// Every stage's output of the C++ forward.
struct Trace {
  std::vector<float> embeddings;
  std::vector<std::vector<float>> blocks;
  std::vector<float> logits;
};

inline Trace run_forward(Backend& be, const Golden& g) {
  const ModelSpec& d = g.dims;
  const int64_t tokens = g.batch * g.seq;
  Trace tr;
  const EmbeddingWeights emb = load_embedding_weights(be, g.model, d);
  Buffer h(be, tokens * d.hidden);
  embed_tokens(be, d, emb, g.ids, g.seq, h.data());
  tr.embeddings = h.to_host();
  BlockWorkspace ws(be, d, tokens);
  for (int64_t b = 0; b < d.n_layer; ++b) {
    const BlockWeights w = load_block_weights(be, g.model, d, b);
    block_forward(be, d.block(b), w, g.batch, g.seq, h.data(), ws);
    tr.blocks.push_back(h.to_host());
  }
  const FinalNormWeights fin = load_final_norm_weights(be, g.model, d);
  Buffer normed(be, tokens * d.hidden), logits(be, tokens * d.vocab);
  lm_head(be, d, fin, emb, tokens, h.data(), normed.data(), logits.data());
  tr.logits = logits.to_host();
  return tr;
}

// Block b of the C++ forward fed with transformers' input of that block (its own error only).
inline std::vector<float> run_block_alone(Backend& be, const Golden& g, int64_t b) {
  const std::vector<float> in = g.tensor(b == 0 ? "embeddings" : "block." + std::to_string(b - 1));
  Buffer h(be, in);
  BlockWorkspace ws(be, g.dims, g.batch * g.seq);
  const BlockWeights w = load_block_weights(be, g.model, g.dims, b);
  block_forward(be, g.dims.block(b), w, g.batch, g.seq, h.data(), ws);
  return h.to_host();
}

// EXPECTs every tensor of the trace within kRelTol of the fixture's and returns the errors in
// words ("<name>: embeddings 0.00e+00, block 0 8.02e-07, ..., logits 8.95e-07").
inline std::string expect_trace_matches(const Golden& g, const Trace& tr, const std::string& name) {
  const double e_emb = rel_err(tr.embeddings, g.tensor("embeddings"));
  EXPECT_LE(e_emb, kRelTol) << "embeddings";
  std::string report = name + ": embeddings " + fmt::format("{:.2e}", e_emb);
  for (int64_t b = 0; b < g.dims.n_layer; ++b) {
    const double e = rel_err(tr.blocks[b], g.tensor("block." + std::to_string(b)));
    EXPECT_LE(e, kRelTol) << "block " << b;
    report += fmt::format(", block {} {:.2e}", b, e);
  }
  const double e_logits = rel_err(tr.logits, g.tensor("logits"));
  EXPECT_LE(e_logits, kRelTol) << "logits";
  report += fmt::format(", logits {:.2e}", e_logits);
  return report;
}

// The raw values of tensor `name` of dtype `dtype` (an EXPECT failure and {} otherwise).
template <typename T>
std::vector<T> read_raw(const SafetensorsFile& f, const std::string& name, DType dtype) {
  const TensorInfo* t = f.find(name);
  EXPECT_TRUE(t != nullptr && t->dtype == dtype) << name;
  if (t == nullptr || t->dtype != dtype) return {};
  std::vector<T> v(static_cast<size_t>(t->numel()));
  std::memcpy(v.data(), f.data(*t), v.size() * sizeof(T));
  return v;
}

// The fixture's perplexity.safetensors (tokens, seqlen and transformers' perplexity over them)
// against gptqd eval's windows and arithmetic on the CPU backend: within 1e-5 relative. Prints
// both under `name`.
inline void expect_perplexity_matches_transformers(const std::string& dir,
                                                   const std::string& name) {
  const HfModel model = HfModel::open(dir);
  const SafetensorsFile ref = SafetensorsFile::open(dir + "/perplexity.safetensors");
  const auto tokens = read_raw<int32_t>(ref, "tokens", DType::I32);
  const int64_t seqlen = read_raw<int64_t>(ref, "seqlen", DType::I64).at(0);
  const double want = read_raw<double>(ref, "ppl", DType::F64).at(0);
  int64_t nwin = 0;
  const std::vector<int32_t> windows = eval_windows(tokens, seqlen, &nwin);
  auto be = make_cpu_backend(1);
  const double got = perplexity_from_nlls(window_nlls(*be, model, model.spec(), windows, seqlen));
  const double rel = std::fabs(got - want) / want;
  EXPECT_LE(rel, 1e-5) << "ours " << got << " transformers " << want;
  std::printf("[ ppl      ] %s: ours %.6f transformers %.6f relative %.2e\n", name.c_str(), got,
              want, rel);
}

}  // namespace gptqd::test
