// The tokenizer.json forms of the supported families against HF tokenizers 0.21.1: fixtures made
// by scripts/make_tokenizer_forms.py (its docstring says how, and why the vocabularies are small
// trained ones with the released settings). Each form also has a mutation control: the same file
// with one setting changed must NOT match, which shows the comparison can fail.
#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>

#include "io/tokenizer/tokenizer.h"
#include "io/tokenizer/tokenizer_unicode.h"
#include "base/check.h"
#include "tests/unit/test_tokenizer_util.h"

namespace gptqd {
namespace {

using nlohmann::json;
using namespace tok_test;

std::string form_path(const std::string& form, const std::string& file) {
  return test::source_path("tests/fixtures/tokenizer/forms/" + form + "/" + file);
}

const json& form_json(const std::string& form) {
  static std::map<std::string, json> cache;
  auto it = cache.find(form);
  if (it == cache.end()) {
    it = cache.emplace(form, json::parse(read_file(form_path(form, "tokenizer.json")))).first;
  }
  return it->second;
}

const json& form_cases(const std::string& form) {
  static std::map<std::string, json> cache;
  auto it = cache.find(form);
  if (it == cache.end()) {
    it = cache.emplace(form, json::parse(read_file(form_path(form, "cases.json")))).first;
  }
  return it->second;
}

// A case's text: the string, or {"repeat": unit, "chars": n}, the first n code points of unit
// repeated.
std::string case_text(const json& t) {
  if (t.is_string()) return t.get<std::string>();
  const auto unit = t["repeat"].get<std::string>();
  const auto chars = t["chars"].get<size_t>();
  std::string out;
  size_t n = 0, pos = 0;
  while (n < chars) {
    const size_t begin = pos;
    tok::next_code_point(unit, pos);
    out.append(unit, begin, pos - begin);
    ++n;
    if (pos == unit.size()) pos = 0;
  }
  return out;
}

// ids against a fixture's list or {"n", "fnv"}.
bool ids_match(const std::vector<int32_t>& ids, const json& expected) {
  if (expected.is_array()) return ids == expected.get<std::vector<int32_t>>();
  return ids.size() == expected["n"].get<size_t>() &&
         std::to_string(fnv1a64(ids)) == expected["fnv"].get<std::string>();
}

bool text_matches(const std::string& text, const json& expected) {
  if (expected.is_string()) return text == expected.get<std::string>();
  return text.size() == expected["n"].get<size_t>() &&
         std::to_string(fnv1a64_bytes(text)) == expected["fnv"].get<std::string>();
}

// Mismatches of one text's grouped fixture (encode_with_specials per line); up to `report`
// are reported as test failures.
int line_mismatches(const Tokenizer& tok, const std::string& form, const std::string& text_name,
                    int report) {
  const auto lines = split_lines(read_file(test::source_path("data/" + text_name + ".txt")));
  const std::string fx = read_file(form_path(form, text_name + ".bin"));
  if (fx.size() < 24 || fx.substr(0, 4) != "GTKG") {
    ADD_FAILURE() << form << "/" << text_name << ".bin is not a GTKG fixture";
    return 1;
  }
  size_t pos = 4;
  EXPECT_EQ(read_le<uint32_t>(fx, &pos), 2u);
  const auto n_lines = read_le<uint32_t>(fx, &pos);
  const auto group = read_le<uint32_t>(fx, &pos);
  const auto whole_expected = read_le<uint64_t>(fx, &pos);
  if (n_lines != lines.size() || group == 0 ||
      fx.size() != pos + 12u * ((n_lines + group - 1) / group)) {
    ADD_FAILURE() << text_name << " changed since the fixture was made, or the fixture is bad";
    return 1;
  }
  uint64_t whole = kFnvOffset;
  int mismatches = 0;
  for (size_t g = 0; g < lines.size(); g += group) {
    uint64_t h = kFnvOffset;
    size_t n = 0;
    for (size_t i = g; i < std::min<size_t>(g + group, lines.size()); ++i) {
      const auto ids = tok.encode_with_specials(lines[i]);
      h = fnv1a64(ids, h);
      whole = fnv1a64(ids, whole);
      n += ids.size();
    }
    const auto count = read_le<uint32_t>(fx, &pos);
    const auto hash = read_le<uint64_t>(fx, &pos);
    if ((n != count || h != hash) && ++mismatches <= report) {
      ADD_FAILURE() << form << ": data/" << text_name << ".txt lines " << g + 1 << ".."
                    << std::min<size_t>(g + group, lines.size()) << " encode to " << n
                    << " ids, HF to " << count << " (or hashes differ)";
    }
  }
  if (whole != whole_expected) ++mismatches;
  return mismatches;
}

// Mismatches over the tricky strings (ids, ids with specials, decode); up to `report` reported.
int tricky_mismatches(const Tokenizer& tok, const std::string& form, int report) {
  int mismatches = 0;
  for (const auto& c : form_cases(form)["tricky"]) {
    const std::string text = case_text(c["text"]);
    const auto ids = tok.encode(text);
    const bool ok = ids_match(ids, c["ids"]) &&
                    ids_match(tok.encode_with_specials(text), c["ids_special"]) &&
                    text_matches(tok.decode(ids), c["decoded"]);
    if (!ok && ++mismatches <= report) {
      ADD_FAILURE() << form << ": " << json(text.substr(0, 200)).dump();
    }
  }
  return mismatches;
}

class TokenizerForms : public testing::TestWithParam<std::string> {
 protected:
  const Tokenizer& tok() {
    static std::map<std::string, Tokenizer> cache;
    auto it = cache.find(GetParam());
    if (it == cache.end()) {
      it =
          cache.emplace(GetParam(), Tokenizer::load(form_path(GetParam(), "tokenizer.json"))).first;
    }
    return it->second;
  }
};

TEST_P(TokenizerForms, EveryAustenLineMatchesHF) {
  EXPECT_EQ(line_mismatches(tok(), GetParam(), "austen", 5), 0);
}

TEST_P(TokenizerForms, EveryKjvLineMatchesHF) {
  EXPECT_EQ(line_mismatches(tok(), GetParam(), "kjv", 5), 0);
}

TEST_P(TokenizerForms, TrickyStringsMatchHF) {
  ASSERT_GT(form_cases(GetParam())["tricky"].size(), 90u);
  EXPECT_EQ(tricky_mismatches(tok(), GetParam(), 10), 0);
}

TEST_P(TokenizerForms, VocabularyAndSpecialsMatchHF) {
  const json& c = form_cases(GetParam());
  EXPECT_EQ(tok().vocab_size(), c["vocab_size"].get<int64_t>());
  EXPECT_EQ(tok().encode_with_specials(""), c["empty_special"].get<std::vector<int32_t>>());
  for (const auto& [content, id] : c["added"].items()) {
    EXPECT_EQ(tok().encode(content), std::vector<int32_t>{id.get<int32_t>()}) << content;
  }
}

INSTANTIATE_TEST_SUITE_P(Families, TokenizerForms,
                         testing::Values("gpt2", "opt", "smollm2", "llama3", "qwen2", "llama2",
                                         "mistral"));

TEST(TokenizerFormsSummary, SaysWhatThePostProcessorAdds) {
  const std::map<std::string, std::string> expected = {
      {"gpt2", "no BOS/EOS added"},         {"opt", "BOS </s> (2) prepended"},
      {"smollm2", "no BOS/EOS added"},      {"llama3", "BOS <|begin_of_text|> (2500) prepended"},
      {"qwen2", "no BOS/EOS added"},        {"llama2", "BOS <s> (1) prepended"},
      {"mistral", "BOS <s> (1) prepended"},
  };
  for (const auto& [form, words] : expected) {
    EXPECT_EQ(Tokenizer::load(form_path(form, "tokenizer.json")).special_tokens_summary(), words)
        << form;
  }
  EXPECT_EQ(Tokenizer::load(test::source_path("models/tiny-bloom/tokenizer.json"))
                .special_tokens_summary(),
            "no BOS/EOS added");
  json j = form_json("opt");
  j["post_processor"] = {{"type", "RobertaProcessing"},
                         {"sep", {"</s>", 2}},
                         {"cls", {"<s>", 0}},
                         {"trim_offsets", true},
                         {"add_prefix_space", false}};
  const Tokenizer roberta = Tokenizer::from_json_text(j.dump(), "roberta");
  EXPECT_EQ(roberta.special_tokens_summary(), "BOS <s> (0) prepended, EOS </s> (2) appended");
  EXPECT_EQ(roberta.encode_with_specials("</s>"), (std::vector<int32_t>{0, 2, 2}));
}

// One setting changed the way a wrong implementation would get it wrong: the ids must differ
// from HF's somewhere (tricky strings or the lines of austen.txt).
struct Mutation {
  std::string form, what;
  std::function<void(json&)> change;
};

TEST(TokenizerFormsMutation, EachFormsComparisonCanFail) {
  const auto pre_step = [](json& j, size_t i) -> json& {
    return j["pre_tokenizer"]["pretokenizers"][i];
  };
  const std::vector<Mutation> mutations = {
      {"gpt2", "ByteLevel without GPT-2's regex",
       [](json& j) { j["pre_tokenizer"]["use_regex"] = false; }},
      {"opt", "BOS not added", [](json& j) { j["post_processor"] = nullptr; }},
      // (Dropping the Digits step would not do: a vocabulary trained on single digits, as
      // SmolLM2's is, has no multi-digit tokens, so the ids stay the same.)
      {"smollm2", "ByteLevel without GPT-2's regex",
       [&](json& j) { pre_step(j, 1)["use_regex"] = false; }},
      // (Qwen2's regex, single digits, would not do: the small trained vocabulary has no
      // multi-digit tokens; see also qwen2 below.)
      {"llama3", "BLOOM's regex instead of Llama 3's",
       [&](json& j) { pre_step(j, 0)["pattern"]["Regex"] = " ?[^(\\s|[.,!?…。，、।۔،])]+"; }},
      {"llama3", "BOS not added", [](json& j) { j["post_processor"]["processors"].erase(1); }},
      {"qwen2", "no NFC", [](json& j) { j["normalizer"] = nullptr; }},
      // (Llama 3's regex would not do: a vocabulary trained on single digits has no multi-digit
      // tokens, so grouping digits by three gives the same ids.)
      {"qwen2", "BLOOM's regex instead of Qwen2's",
       [&](json& j) { pre_step(j, 0)["pattern"]["Regex"] = " ?[^(\\s|[.,!?…。，、।۔،])]+"; }},
      {"llama2", "no byte fallback", [](json& j) { j["model"]["byte_fallback"] = false; }},
      {"llama2", "BOS not added", [](json& j) { j["post_processor"] = nullptr; }},
      {"llama2", "no Prepend", [](json& j) { j["normalizer"]["normalizers"].erase(0); }},
      {"mistral", "prepend_scheme always instead of first",
       [](json& j) { j["pre_tokenizer"]["prepend_scheme"] = "always"; }},
      {"mistral", "no byte fallback", [](json& j) { j["model"]["byte_fallback"] = false; }},
  };
  for (const auto& m : mutations) {
    SCOPED_TRACE(m.form + ": " + m.what);
    json j = form_json(m.form);
    m.change(j);
    const Tokenizer mutant = Tokenizer::from_json_text(j.dump(), m.form + " mutant");
    int found = tricky_mismatches(mutant, m.form, 0);
    if (found == 0) found = line_mismatches(mutant, m.form, "austen", 0);
    EXPECT_GT(found, 0) << "the mutant still matches HF: the comparison cannot fail";
  }
}

}  // namespace
}  // namespace gptqd
