// libFuzzer: any bytes as a tokenizer.json must load or throw InputError, and a loaded tokenizer
// must encode and decode a short text without crashing. Run (see tests/fuzz/CMakeLists.txt):
//   build-fuzz/tests/fuzz/fuzz_tokenizer_load -max_total_time=300 -rss_limit_mb=2048 \
//       tests/fixtures/tokenizer/forms/*/tokenizer.json   (seed files: the form fixtures)
#include <cstddef>
#include <cstdint>
#include <string>

#include "io/tokenizer/tokenizer.h"
#include "base/check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const gptqd::Tokenizer tok = gptqd::Tokenizer::from_json_text(text, "fuzz.json");
    const auto ids = tok.encode_with_specials("Hello, world! 123 <s> caf\xC3\xA9 \xE6\x97\xA5");
    tok.decode(ids);
  } catch (const gptqd::InputError&) {
  }
  return 0;
}
