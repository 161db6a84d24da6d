#include "worker/families/deepseek_rope.h"

#include <algorithm>
#include <cmath>

#include "worker/families/rope.h"

namespace gptqd {
namespace {

double yarn_mscale(double scale, double mscale) {
  return scale <= 1 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

// The (fractional) dimension at which `rotations` full turns fit in the original context.
double correction_dim(double rotations, double dim, double base, double max_pos) {
  return dim * std::log(max_pos / (rotations * 2 * M_PI)) / (2 * std::log(base));
}

}  // namespace

std::vector<float> mla_inv_freq(const ModelConfig& c) {
  ModelConfig plain = c;
  plain.rope_scaling = RopeScaling{};
  const int64_t dim = c.mla.qk_rope_head_dim;
  std::vector<float> inv = rope_inv_freq(plain, dim);  // 1 / theta^(2i/dim) in fp32, as default
  const YarnRope& y = c.mla.yarn;
  if (!y.on) return inv;
  const double base = c.rope_theta, d = static_cast<double>(dim);
  const double orig = static_cast<double>(y.original_max_position_embeddings);
  double low = correction_dim(y.beta_fast, d, base, orig);
  double high = correction_dim(y.beta_slow, d, base, orig);
  if (y.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, d - 1);
  if (low == high) high += 0.001;  // transformers: prevents a singular ramp
  const float factor = static_cast<float>(y.factor);
  const float span = static_cast<float>(high - low);
  for (size_t i = 0; i < inv.size(); ++i) {
    // torch, all fp32: pos = theta^(2i/dim); extrap = 1 / pos; interp = 1 / (factor * pos)
    const float pos =
        std::pow(static_cast<float>(base), static_cast<float>(2 * i) / static_cast<float>(dim));
    const float extrap = 1.0f / pos;
    const float interp = 1.0f / (factor * pos);
    const float ramp =
        std::clamp((static_cast<float>(i) - static_cast<float>(low)) / span, 0.0f, 1.0f);
    const float e = 1.0f - ramp;
    inv[i] = interp * (1.0f - e) + extrap * e;
  }
  return inv;
}

double mla_attention_factor(const ModelConfig& c) {
  const YarnRope& y = c.mla.yarn;
  if (!y.on) return 1.0;
  if (y.attention_factor > 0) return y.attention_factor;
  if (y.mscale > 0 && y.mscale_all_dim > 0)
    return yarn_mscale(y.factor, y.mscale) / yarn_mscale(y.factor, y.mscale_all_dim);
  return yarn_mscale(y.factor, 1.0);
}

double mla_softmax_scale(const ModelConfig& c) {
  double scale = std::pow(static_cast<double>(c.mla.qk_head_dim()), -0.5);
  const YarnRope& y = c.mla.yarn;
  if (y.on && y.mscale_all_dim > 0) {
    const double m = yarn_mscale(y.factor, y.mscale_all_dim);
    scale = scale * m * m;
  }
  return scale;
}

}  // namespace gptqd
