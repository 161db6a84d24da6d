// A random BLOOM written as an HF directory by the tests themselves (config.json +
// model.safetensors with the "transformer." prefix), like scripts/make_tiny_bloom.py.
#pragma once

#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "io/model/safetensors.h"

namespace gptqd::test {

struct TinyBloomSpec {
  int64_t layers = 2, hidden = 64, heads = 4, vocab = 256;
  uint32_t seed = 1;
};

inline void make_random_bloom(const std::string& dir, const TinyBloomSpec& s) {
  std::ofstream(dir + "/config.json")
      << "{\"model_type\": \"bloom\", \"n_layer\": " << s.layers
      << ", \"hidden_size\": " << s.hidden << ", \"n_head\": " << s.heads
      << ", \"vocab_size\": " << s.vocab << ", \"layer_norm_epsilon\": 1e-05}\n";
  std::mt19937 gen(s.seed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::uniform_real_distribution<float> around_one(0.8f, 1.2f);
  std::vector<std::vector<float>> store;
  std::vector<TensorOut> out;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, int kind) {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v)
      x = kind == 0 ? normal(gen) : (kind == 1 ? around_one(gen) : normal(gen) * 0.5f);
    store.push_back(std::move(v));
    out.push_back(TensorOut{"transformer." + name, DType::F32, shape, nullptr});
  };
  const int64_t h = s.hidden, f = 4 * s.hidden;
  add("word_embeddings.weight", {s.vocab, h}, 0);
  add("word_embeddings_layernorm.weight", {h}, 1);
  add("word_embeddings_layernorm.bias", {h}, 2);
  for (int64_t i = 0; i < s.layers; ++i) {
    const std::string p = "h." + std::to_string(i) + ".";
    add(p + "input_layernorm.weight", {h}, 1);
    add(p + "input_layernorm.bias", {h}, 2);
    add(p + "self_attention.query_key_value.weight", {3 * h, h}, 0);
    add(p + "self_attention.query_key_value.bias", {3 * h}, 2);
    add(p + "self_attention.dense.weight", {h, h}, 0);
    add(p + "self_attention.dense.bias", {h}, 2);
    add(p + "post_attention_layernorm.weight", {h}, 1);
    add(p + "post_attention_layernorm.bias", {h}, 2);
    add(p + "mlp.dense_h_to_4h.weight", {f, h}, 0);
    add(p + "mlp.dense_h_to_4h.bias", {f}, 2);
    add(p + "mlp.dense_4h_to_h.weight", {h, f}, 0);
    add(p + "mlp.dense_4h_to_h.bias", {h}, 2);
  }
  add("ln_f.weight", {h}, 1);
  add("ln_f.bias", {h}, 2);
  for (size_t i = 0; i < out.size(); ++i) out[i].data = store[i].data();
  write_safetensors(dir + "/model.safetensors", out);
}

}  // namespace gptqd::test
