// libFuzzer: any bytes as text for each form's tokenizer (tests/fixtures/tokenizer/forms): valid
// UTF-8 must encode and decode, anything else throw InputError. Ids must be in the vocabulary.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "io/tokenizer/tokenizer.h"
#include "base/check.h"

namespace {

const std::vector<gptqd::Tokenizer>& tokenizers() {
  static const std::vector<gptqd::Tokenizer> toks = [] {
    std::vector<gptqd::Tokenizer> v;
    for (const char* form : {"gpt2", "opt", "smollm2", "llama3", "qwen2", "llama2", "mistral"}) {
      v.push_back(gptqd::Tokenizer::load(std::string(GPTQD_SOURCE_DIR) +
                                         "/tests/fixtures/tokenizer/forms/" + form +
                                         "/tokenizer.json"));
    }
    v.push_back(gptqd::Tokenizer::load(std::string(GPTQD_SOURCE_DIR) +
                                       "/models/tiny-bloom/tokenizer.json"));
    return v;
  }();
  return toks;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (const auto& tok : tokenizers()) {
    try {
      const auto ids = tok.encode_with_specials(text);
      for (const int32_t id : ids) {
        if (id < 0 || id >= tok.vocab_size()) std::abort();
      }
      tok.decode(ids);
    } catch (const gptqd::InputError&) {
    }
  }
  return 0;
}
