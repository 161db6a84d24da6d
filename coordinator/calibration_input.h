// The calibration token windows of a job (DESIGN.md §3 step 2): from text through
// the model's tokenizer.json, or from a pre-tokenized safetensors file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/job_config.h"

namespace gptqd {

// [nsamples * seqlen] token ids. Text: tokenized with <model>/tokenizer.json, then
// windows drawn as the GPTQ reference does (seeded). Tokens file: a safetensors file
// with one integer tensor named "tokens": [n, seqlen] (first nsamples rows used) or
// [n] (windows drawn as for text). InputError names the file and the problem.
std::vector<int32_t> load_calibration_tokens(const JobConfig& job);

// Reads a whole text file (InputError naming it when unreadable).
std::string read_text_file(const std::string& path, const std::string& what);

}  // namespace gptqd
