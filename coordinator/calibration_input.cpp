#include "coordinator/calibration_input.h"

#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/check.h"
#include "base/log.h"
#include "io/job/calibration.h"
#include "io/model/safetensors.h"
#include "io/tokenizer/tokenizer.h"

namespace gptqd {
namespace {

// Text is read whole and tokenized in memory (about 4 bytes of ids per 4 bytes of text): 1 GiB
// is a hundred times the usual calibration sets (C4 shards, WikiText-2).
constexpr uintmax_t kMaxTextFileBytes = uintmax_t{1} << 30;

std::vector<int32_t> tokens_from_file(const JobConfig& job) {
  const auto& c = job.calibration;
  const SafetensorsFile f = [&] {
    try {
      return SafetensorsFile::open(c.tokens);
    } catch (const InputError& e) {  // the reader names the file; the user wrote a key
      throw InputError(fmt::format("calibration.tokens: {}", e.what()));
    }
  }();
  const TensorInfo* t = f.find("tokens");
  GPTQD_INPUT_CHECK(t != nullptr, "{}: no tensor named 'tokens'", c.tokens);
  GPTQD_INPUT_CHECK(t->dtype == DType::I32 || t->dtype == DType::I64,
                    "{}: tensor 'tokens' must be I32 or I64, not {}", c.tokens,
                    dtype_name(t->dtype));
  GPTQD_INPUT_CHECK(t->shape.size() == 1 || t->shape.size() == 2,
                    "{}: tensor 'tokens' must be 1-D or 2-D, it has {} dimensions", c.tokens,
                    t->shape.size());
  std::vector<int32_t> ids(static_cast<size_t>(t->numel()));
  const uint8_t* p = f.data(*t);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (t->dtype == DType::I32) {
      int32_t v;
      memcpy(&v, p + 4 * i, 4);
      ids[i] = v;
    } else {
      int64_t v;
      memcpy(&v, p + 8 * i, 8);
      GPTQD_INPUT_CHECK(v >= INT32_MIN && v <= INT32_MAX, "{}: token {} at {} does not fit int32",
                        c.tokens, v, i);
      ids[i] = static_cast<int32_t>(v);
    }
  }
  if (t->shape.size() == 1) return draw_calibration_windows(ids, c.nsamples, c.seqlen, c.seed);
  const int64_t rows = t->shape[0], cols = t->shape[1];
  GPTQD_INPUT_CHECK(cols == c.seqlen, "{}: tokens have {} columns but calibration.seqlen is {}",
                    c.tokens, cols, c.seqlen);
  GPTQD_INPUT_CHECK(rows >= c.nsamples, "{}: {} token rows but calibration.nsamples is {}",
                    c.tokens, rows, c.nsamples);
  ids.resize(static_cast<size_t>(c.nsamples * c.seqlen));
  return ids;
}

}  // namespace

void check_text_file(const std::string& path, const std::string& what) {
  // Regular files only, of a bounded size: /dev/zero, a FIFO or a directory would otherwise
  // be read forever, block, or give "0 tokens".
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  GPTQD_INPUT_CHECK(!ec && std::filesystem::exists(st), "{}: cannot read '{}': {}", what, path,
                    ec ? ec.message() : "no such file");
  GPTQD_INPUT_CHECK(std::filesystem::is_regular_file(st),
                    "{}: '{}' is not a regular file (a directory, device or pipe); give a text "
                    "file",
                    what, path);
  const uintmax_t size = std::filesystem::file_size(path, ec);
  GPTQD_INPUT_CHECK(!ec && size <= kMaxTextFileBytes,
                    "{}: '{}' is {} bytes; a text file is read whole and may be at most {} bytes",
                    what, path, size, kMaxTextFileBytes);
}

std::string read_text_file(const std::string& path, const std::string& what) {
  check_text_file(path, what);
  std::ifstream in(path, std::ios::binary);
  GPTQD_INPUT_CHECK(in.good(), "{}: cannot read {} '{}'", what, what, path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<int32_t> load_calibration_tokens(const JobConfig& job) {
  const auto& c = job.calibration;
  if (!c.tokens.empty()) return tokens_from_file(job);
  const std::string tok_path = tokenizer_json_of(job.model_path);
  GPTQD_INPUT_CHECK(std::filesystem::exists(tok_path),
                    "calibration.text needs the model's tokenizer: {} does not exist", tok_path);
  const Tokenizer tok = Tokenizer::load(tok_path);
  const std::string text = read_text_file(c.text, "calibration.text");
  const std::vector<int32_t> ids = tok.encode(text, fmt::format("calibration.text '{}'", c.text));
  GPTQD_LOG_INFO("calibration: {} tokens from {}, {} windows of {} (seed {})", ids.size(), c.text,
                 c.nsamples, c.seqlen, c.seed);
  return draw_calibration_windows(ids, c.nsamples, c.seqlen, c.seed);
}

void check_token_ids(const std::vector<int32_t>& tokens, int64_t vocab, const JobConfig& job) {
  const auto& c = job.calibration;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] >= 0 && tokens[i] < vocab) continue;
    const int64_t window = static_cast<int64_t>(i) / c.seqlen;
    const int64_t position = static_cast<int64_t>(i) % c.seqlen;
    // Ids of a tokens file are the user's; ids of a text come from the model's tokenizer.json.
    if (!c.tokens.empty())
      throw InputError(fmt::format(
          "{}: token id {} (window {}, position {}) is outside the model's vocabulary [0, {})",
          c.tokens, tokens[i], window, position, vocab));
    throw InputError(fmt::format(
        "{}: token id {} is outside the model's vocabulary [0, {}) (config.json's vocab size): "
        "the tokenizer does not fit the model (it gave the id for calibration.text '{}', window "
        "{}, position {})",
        tokenizer_json_of(job.model_path), tokens[i], vocab, c.text, window, position));
  }
}

std::string tokenizer_json_of(const std::string& model_path) {
  return (std::filesystem::path(model_path) / "tokenizer.json").string();
}

void check_tokenizer_ids(const std::vector<int32_t>& ids, int64_t vocab,
                         const std::string& tokenizer_path, const std::string& text_what) {
  for (size_t i = 0; i < ids.size(); ++i)
    GPTQD_INPUT_CHECK(ids[i] >= 0 && ids[i] < vocab,
                      "{}: token id {} is outside the model's vocabulary [0, {}) (config.json's "
                      "vocab size): the tokenizer does not fit the model (it gave the id for {}, "
                      "token {} of the text)",
                      tokenizer_path, ids[i], vocab, text_what, i);
}

}  // namespace gptqd
