// Streaming Hessian of one linear layer's inputs (DESIGN.md §4), as the GPTQ
// reference's add_batch accumulates it:
//   H *= n / (n + m);  n += m;  H += (2 / n) X^T X
// for a batch X of m samples (sequences). n counts samples, not tokens, as the
// reference does, so after all batches H = (2 / N) sum_t x_t x_t^T with N the
// number of sequences. H lives in backend memory and is fp32.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/backend.h"
#include "kernels/buffer.h"

namespace gptqd {

class HessianAccumulator {
 public:
  // A zero [dim, dim] Hessian in `be`'s memory. dim > 0. `be` must outlive this.
  HessianAccumulator(Backend& be, int64_t dim);

  // Adds one batch: x is backend memory [tokens, dim] (row-major), holding the
  // inputs of `samples` >= 1 sequences (tokens >= 0). Throws gptqd::Error on a
  // bad count.
  void add(const float* x, int64_t tokens, int64_t samples);

  int64_t samples() const { return samples_; }
  int64_t dim() const { return dim_; }
  float* data() { return h_.data(); }  // backend memory [dim, dim], both triangles
  std::vector<float> to_host() const { return h_.to_host(); }
  // Back to zero samples and H = 0.
  void reset();

 private:
  Backend* be_;
  int64_t dim_;
  int64_t samples_ = 0;
  Buffer h_;
};

}  // namespace gptqd
