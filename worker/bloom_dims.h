// Shapes of one BLOOM model, derived from its config.json.
#pragma once

#include <cstdint>

#include "io/hf_model.h"

namespace gptqd {

struct BloomDims {
  int64_t hidden = 0;
  int64_t n_head = 0;
  int64_t head_dim = 0;
  int64_t ffn = 0;
  int64_t vocab = 0;
  int64_t n_layer = 0;
  float ln_eps = 1e-5f;
  bool post_ln_residual = false;  // apply_residual_connection_post_layernorm

  static BloomDims from(const BloomConfig& c) {
    BloomDims d;
    d.hidden = c.hidden;
    d.n_head = c.n_head;
    d.head_dim = c.head_dim();
    d.ffn = c.ffn();
    d.vocab = c.vocab;
    d.n_layer = c.n_layer;
    d.ln_eps = static_cast<float>(c.layer_norm_epsilon);
    d.post_ln_residual = c.apply_residual_connection_post_layernorm;
    return d;
  }
};

// The four linear layers of a block in true-sequential order (io/bloom_names.h block_linears()).
enum LinearIndex : int { kQkv = 0, kDense = 1, kH4h = 2, kFourHh = 3, kNumLinears = 4 };

}  // namespace gptqd
