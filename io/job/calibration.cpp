// Calibration windows (random, GPTQ reference) and evaluation windows (consecutive).
#include "io/job/calibration.h"

#include "base/check.h"

namespace gptqd {

std::vector<int32_t> draw_calibration_windows(const std::vector<int32_t>& tokens, int64_t nsamples,
                                              int64_t seqlen, uint64_t seed) {
  GPTQD_INPUT_CHECK(nsamples >= 0, "calibration: nsamples = {} must be >= 0", nsamples);
  GPTQD_INPUT_CHECK(seqlen >= 1, "calibration: seqlen = {} must be >= 1", seqlen);
  const auto n = static_cast<int64_t>(tokens.size());
  GPTQD_INPUT_CHECK(
      n >= seqlen + 1,
      "calibration text has {} tokens; drawing windows of seqlen {} needs at least {}", n, seqlen,
      seqlen + 1);
  PyRandom rng(seed);
  std::vector<int32_t> out;
  out.reserve(static_cast<size_t>(nsamples * seqlen));
  for (int64_t s = 0; s < nsamples; ++s) {
    const int64_t i = rng.randint(0, n - seqlen - 1);
    out.insert(out.end(), tokens.begin() + i, tokens.begin() + i + seqlen);
  }
  return out;
}

std::vector<int32_t> eval_windows(const std::vector<int32_t>& tokens, int64_t seqlen,
                                  int64_t* nwin) {
  GPTQD_INPUT_CHECK(seqlen >= 1, "eval: seqlen = {} must be >= 1", seqlen);
  const auto n = static_cast<int64_t>(tokens.size());
  GPTQD_INPUT_CHECK(n >= seqlen, "eval text has {} tokens, fewer than one window of seqlen {}", n,
                    seqlen);
  *nwin = n / seqlen;
  return std::vector<int32_t>(tokens.begin(), tokens.begin() + *nwin * seqlen);
}

}  // namespace gptqd
