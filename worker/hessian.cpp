#include "worker/hessian.h"

#include "base/check.h"

namespace gptqd {

HessianAccumulator::HessianAccumulator(Backend& be, int64_t dim)
    : be_(&be), dim_(dim), h_(be, dim * dim) {
  GPTQD_CHECK(dim > 0, "Hessian dimension must be positive, got {}", dim);
}

void HessianAccumulator::add(const float* x, int64_t tokens, int64_t samples) {
  GPTQD_CHECK(samples >= 1 && tokens >= 0,
              "Hessian batch needs samples >= 1 and tokens >= 0, got {} and {}", samples, tokens);
  const int64_t total = samples_ + samples;
  // The scalars in double, rounded once: the old sum's weight n / (n + m) and
  // the new batch's 2 / (n + m).
  const float keep = static_cast<float>(static_cast<double>(samples_) / static_cast<double>(total));
  const float scale = static_cast<float>(2.0 / static_cast<double>(total));
  be_->xtx(tokens, dim_, x, keep, scale, h_.data());
  samples_ = total;
}

void HessianAccumulator::reset() {
  be_->fill(h_.data(), 0.0f, dim_ * dim_);
  samples_ = 0;
}

}  // namespace gptqd
