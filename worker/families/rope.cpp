#include "worker/families/rope.h"

#include <cmath>

namespace gptqd {

std::vector<float> rope_inv_freq(const ModelConfig& c, int64_t head_dim) {
  const int64_t half = head_dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  const float base = static_cast<float>(c.rope_theta);
  for (int64_t i = 0; i < half; ++i) {
    // torch: 1.0 / (base ** (arange(0, dim, 2).float() / dim)), all in fp32
    const float e = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    inv[i] = 1.0f / std::pow(base, e);
  }
  const RopeScaling& r = c.rope_scaling;
  switch (r.type) {
    case RopeType::kDefault:
      break;
    case RopeType::kLinear:
      for (float& f : inv) f = static_cast<float>(f / r.factor);
      break;
    case RopeType::kLlama3: {
      const double old_len = static_cast<double>(r.original_max_position_embeddings);
      const double low_wavelen = old_len / r.low_freq_factor;
      const double high_wavelen = old_len / r.high_freq_factor;
      for (float& f : inv) {
        const double wavelen = 2 * M_PI / f;
        if (wavelen > low_wavelen) {
          f = static_cast<float>(f / r.factor);
        } else if (wavelen >= high_wavelen) {  // the medium band: interpolate
          const double smooth =
              (old_len / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
          f = static_cast<float>((1 - smooth) * f / r.factor + smooth * f);
        }
      }
      break;
    }
  }
  return inv;
}

void rope_tables(const std::vector<float>& inv_freq, int64_t seq, std::vector<float>& cos,
                 std::vector<float>& sin) {
  const size_t half = inv_freq.size();
  cos.resize(static_cast<size_t>(seq) * half);
  sin.resize(cos.size());
  for (int64_t p = 0; p < seq; ++p) {
    for (size_t i = 0; i < half; ++i) {
      const float angle = static_cast<float>(p) * inv_freq[i];  // fp32 like torch's matmul
      cos[p * half + i] = static_cast<float>(std::cos(static_cast<double>(angle)));
      sin[p * half + i] = static_cast<float>(std::sin(static_cast<double>(angle)));
    }
  }
}

}  // namespace gptqd
