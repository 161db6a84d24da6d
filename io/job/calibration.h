// Calibration and evaluation windows over a tokenized text, drawn exactly as the GPTQ
// reference (IST-DASLab/gptq datautils.py) does, so a run can be compared token for token.
#pragma once

#include <cstdint>
#include <vector>

#include "io/job/py_random.h"

namespace gptqd {

// The reference's draw: random.seed(seed); for each of nsamples:
//   i = random.randint(0, n_tokens - seqlen - 1); window = tokens[i : i + seqlen].
// Returns the windows back to back ([nsamples * seqlen]). Needs nsamples >= 0, seqlen >= 1 and
// n_tokens >= seqlen + 1; InputError otherwise, saying how many tokens the text has and needs.
std::vector<int32_t> draw_calibration_windows(const std::vector<int32_t>& tokens, int64_t nsamples,
                                              int64_t seqlen, uint64_t seed);

// Non-overlapping evaluation windows as in the GPTQ paper: *nwin = n_tokens / seqlen windows
// tokens[w * seqlen : (w + 1) * seqlen], back to back; the remainder is dropped. InputError when
// seqlen < 1 or the text is shorter than one window.
std::vector<int32_t> eval_windows(const std::vector<int32_t>& tokens, int64_t seqlen,
                                  int64_t* nwin);

}  // namespace gptqd
