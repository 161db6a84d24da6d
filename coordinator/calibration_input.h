// The calibration token windows of a job (DESIGN.md §3 step 2): from text through
// the model's tokenizer.json, or from a pre-tokenized safetensors file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/job/job_config.h"

namespace gptqd {

// [nsamples * seqlen] token ids. Text: tokenized with <model>/tokenizer.json, then
// windows drawn as the GPTQ reference does (seeded). Tokens file: a safetensors file
// with one integer tensor named "tokens": [n, seqlen] (first nsamples rows used) or
// [n] (windows drawn as for text). InputError names the file and the problem.
std::vector<int32_t> load_calibration_tokens(const JobConfig& job);

// InputError when an id is outside [0, vocab), naming the window and the position: checked before
// the checkpoint is created. The culprit it names is calibration.tokens for a tokens file, and
// the model's tokenizer.json (with the id, and the text it tokenized) for calibration.text.
void check_token_ids(const std::vector<int32_t>& tokens, int64_t vocab, const JobConfig& job);

// <model_path>/tokenizer.json.
std::string tokenizer_json_of(const std::string& model_path);

// InputError naming tokenizer_path and the id when one of the ids it gave for a text (text_what,
// e.g. "eval.text 'a.txt'") is outside [0, vocab).
void check_tokenizer_ids(const std::vector<int32_t>& ids, int64_t vocab,
                         const std::string& tokenizer_path, const std::string& text_what);

// InputError naming `what` and the path unless it is a readable regular file of at most 1 GiB
// (not /dev/zero, a pipe or a directory). Cheap: the job checks its text inputs before any work.
void check_text_file(const std::string& path, const std::string& what);

// Reads a whole regular text file of at most 1 GiB (InputError naming it and `what` otherwise).
std::string read_text_file(const std::string& path, const std::string& what);

}  // namespace gptqd
