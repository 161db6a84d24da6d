// Hostile tokenizer.json files: each must give one InputError line, never a crash, and bounded
// memory (size and depth are checked before the JSON is built).
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "base/check.h"
#include "io/tokenizer/tokenizer.h"
#include "tests/unit/test_tokenizer_util.h"

namespace gptqd {
namespace {

using nlohmann::json;
using namespace tok_test;

std::string llama3_text() {
  return read_file(test::source_path("tests/fixtures/tokenizer/forms/llama3/tokenizer.json"));
}

// from_json_text(text) must throw one InputError line holding `needle`.
void expect_input_error(const std::string& text, const std::string& what,
                        const std::string& needle) {
  try {
    Tokenizer::from_json_text(text, "hostile.json");
    ADD_FAILURE() << what << ": loaded";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("hostile.json"), std::string::npos) << what << ": " << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << what << ": " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << what << ": " << msg;
  }
}

TEST(TokenizerHostile, TruncatedAnywhereIsOneError) {
  const std::string text = llama3_text();
  for (size_t cut = 0; cut < text.size(); cut += text.size() / 97 + 1) {
    expect_input_error(text.substr(0, cut), "cut at " + std::to_string(cut), "JSON");
  }
}

TEST(TokenizerHostile, MergesNamingUnknownTokens) {
  json j = json::parse(llama3_text());
  j["model"]["merges"][3] = {"\xC4\xA0zz", "qq"};
  expect_input_error(j.dump(), "unknown merge", "model.merges[3]");
}

TEST(TokenizerHostile, RegexesThatDoNotCompileOrAreUnknown) {
  json j = json::parse(llama3_text());
  for (const std::string regex : {"(?i:'s|'t", "[", "\\p{Nope}+", "(?<=a)b"}) {
    j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = regex;
    expect_input_error(j.dump(), regex, "Regex");
  }
}

TEST(TokenizerHostile, DeeplyNestedJson) {
  expect_input_error(std::string(1000000, '['), "brackets", "nested deeper");
  std::string objects;
  for (int i = 0; i < 100000; ++i) objects += "{\"a\":";
  expect_input_error(objects, "objects", "nested deeper");
  // Nested pre-tokenizer Sequences within the depth limit are walked fine...
  json j = json::parse(llama3_text());
  json pre = j["pre_tokenizer"];
  for (int i = 0; i < 20; ++i) pre = {{"type", "Sequence"}, {"pretokenizers", {pre}}};
  j["pre_tokenizer"] = pre;
  EXPECT_EQ(Tokenizer::from_json_text(j.dump(), "nested.json").encode("Hello"),
            Tokenizer::from_json_text(llama3_text(), "plain.json").encode("Hello"));
  // ...and past it refused.
  for (int i = 0; i < 40; ++i) pre = {{"type", "Sequence"}, {"pretokenizers", {pre}}};
  j["pre_tokenizer"] = pre;
  expect_input_error(j.dump(), "nested Sequences", "nested deeper");
}

// 10^7 vocabulary entries (about 170 MB): refused from the file's size, before reading it.
TEST(TokenizerHostile, HugeVocabularyIsRefusedBeforeReading) {
  const auto path = (test::scratch_dir("tokenizer-hostile") / "huge.json").string();
  {
    std::ofstream out(path, std::ios::binary);
    out << R"({"normalizer":null,"pre_tokenizer":{"type":"ByteLevel"},"decoder":{"type":"ByteLevel"},"model":{"type":"BPE","merges":[],"vocab":{)";
    std::string chunk;
    for (int i = 0; i < 10000000; ++i) {
      chunk += "\"t" + std::to_string(i) + "\":" + std::to_string(i) + ",";
      if (chunk.size() > (1 << 20)) {
        out << chunk;
        chunk.clear();
      }
    }
    out << chunk << "\"end\":10000000}}}";
  }
  try {
    Tokenizer::load(path);
    ADD_FAILURE() << "loaded";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("more than gptqd reads"), std::string::npos) << e.what();
  }
  std::remove(path.c_str());
}

TEST(TokenizerHostile, OddButValidInputs) {
  json j = json::parse(llama3_text());
  j["model"]["vocab"] = json::object();
  j["model"]["merges"] = json::array();
  // Empty vocabulary: HF drops unknown characters without unk_token; so does gptqd.
  const Tokenizer empty = Tokenizer::from_json_text(j.dump(), "empty.json");
  EXPECT_EQ(empty.encode("hello"), std::vector<int32_t>{});
  j = json::parse(llama3_text());
  j["post_processor"]["processors"][1]["special_tokens"]["<|begin_of_text|>"]["ids"] = {-1};
  expect_input_error(j.dump(), "negative special id", "post_processor");
  j = json::parse(llama3_text());
  j["model"]["vocab"]["x"] = 1e30;
  expect_input_error(j.dump(), "float id", "model.vocab");
  // Found by fuzz_tokenizer_load: a number too large for a double is not a parse_error.
  expect_input_error("{\"a\": 99E99999}", "number overflow", "not valid JSON");
}

// Bytes that are not UTF-8: in tokenizer.json (any string, or outside one) the file, the byte and
// its offset and line; in a text to encode the text's name (what the caller passes: the key and
// the file), the byte, its offset, line and column.
TEST(TokenizerHostile, InvalidUtf8NamesWhereItIs) {
  const std::string text = llama3_text();
  const size_t at = text.find("\"vocab\"");
  ASSERT_NE(at, std::string::npos);
  const std::string bad = text.substr(0, at + 1) + "\xC3(" + text.substr(at + 1);
  const auto line =
      1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\n');
  expect_input_error(
      bad, "a vocab key",
      fmt::format("not valid JSON: bad UTF-8 byte 0xC3 at byte offset {} (line {})", at + 1, line));
  const Tokenizer tok = Tokenizer::from_json_text(text, "plain.json");
  try {
    tok.encode(
        "ab\ncd\xFF"
        "e",
        "calibration.text 'c.txt'");
    ADD_FAILURE() << "encoded";
  } catch (const InputError& e) {
    EXPECT_EQ(
        std::string(e.what()),
        "calibration.text 'c.txt' is not valid UTF-8: bad byte 0xFF at byte offset 5 (line 2, "
        "byte 3 of the line)");
  }
  // Control: the same text without the bad byte encodes.
  EXPECT_FALSE(tok.encode("ab\ncde", "calibration.text 'c.txt'").empty());
}

}  // namespace
}  // namespace gptqd
