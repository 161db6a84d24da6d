// tokenizer.json -> TokenizerSpec. Every rejection names the file, the key and, for a component,
// its "type", so a user sees at once which part of their tokenizer gptqd does not implement.
#include "io/tokenizer_json.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_set>

#include "kernels/check.h"

namespace gptqd::tok {
namespace {

using nlohmann::json;

// The "type" of a component, for messages.
std::string type_of(const json& j) {
  if (j.is_object() && j.contains("type") && j["type"].is_string())
    return j["type"].get<std::string>();
  return j.is_object() ? "(no type)" : j.dump().substr(0, 40);
}

class Reader {
 public:
  explicit Reader(std::string path) : path_(std::move(path)) {}

  template <typename... Args>
  [[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) const {
    throw InputError(path_ + ": " + fmt::format(f, std::forward<Args>(args)...));
  }

  // obj[key] as bool; `fallback` when absent or null.
  bool boolean(const json& obj, const char* key, const std::string& where, bool fallback) const {
    if (!obj.contains(key) || obj[key].is_null()) return fallback;
    if (!obj[key].is_boolean())
      fail("{}.{} must be true or false, not {}", where, key, obj[key].dump());
    return obj[key].get<bool>();
  }

  std::string string(const json& obj, const char* key, const std::string& where) const {
    if (!obj.contains(key) || !obj[key].is_string()) fail("{}.{} must be a string", where, key);
    return obj[key].get<std::string>();
  }

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

json read_json(const Reader& r) {
  std::ifstream in(r.path(), std::ios::binary);
  if (!in) r.fail("cannot open the file");
  std::stringstream buf;
  buf << in.rdbuf();
  try {
    return json::parse(buf.str());
  } catch (const json::parse_error& e) {
    r.fail("not valid JSON: {}", e.what());
  }
}

SplitBehavior parse_behavior(const Reader& r, const std::string& name, const std::string& where) {
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  r.fail("{}.behavior '{}' is not a Split behavior", where, name);
}

SplitRule parse_split(const Reader& r, const json& step, const std::string& where) {
  SplitRule rule;
  const json& pattern = step.contains("pattern") ? step["pattern"] : json();
  if (pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string()) {
    const auto regex = pattern["Regex"].get<std::string>();
    if (regex != kBloomSplitRegex) {
      r.fail(
          "{}.pattern.Regex \"{}\" is not supported: gptqd implements only BLOOM's Split regex "
          "\"{}\" (Oniguruma is not built in)",
          where, regex, kBloomSplitRegex);
    }
    rule.bloom_regex = true;
  } else if (pattern.is_object() && pattern.contains("String") && pattern["String"].is_string()) {
    rule.literal = pattern["String"].get<std::string>();
    if (rule.literal.empty()) r.fail("{}.pattern.String is empty", where);
  } else {
    r.fail("{}.pattern must be {{\"Regex\": ...}} or {{\"String\": ...}}, not {}", where,
           pattern.dump());
  }
  rule.behavior = parse_behavior(r, r.string(step, "behavior", where), where);
  rule.invert = r.boolean(step, "invert", where, false);
  return rule;
}

// Flattens (nested) Sequences into spec.splits plus the final ByteLevel.
void parse_pre_tokenizer_step(const Reader& r, const json& step, const std::string& where,
                              bool* seen_byte_level, TokenizerSpec& spec) {
  const std::string type = type_of(step);
  if (*seen_byte_level) {
    r.fail("{} ({}) comes after ByteLevel: gptqd supports ByteLevel only as the last step", where,
           type);
  }
  if (type == "Sequence") {
    if (!step.contains("pretokenizers") || !step["pretokenizers"].is_array()) {
      r.fail("{}.pretokenizers must be a list", where);
    }
    const json& steps = step["pretokenizers"];
    for (size_t i = 0; i < steps.size(); ++i) {
      parse_pre_tokenizer_step(r, steps[i], fmt::format("{}.pretokenizers[{}]", where, i),
                               seen_byte_level, spec);
    }
  } else if (type == "Split") {
    spec.splits.push_back(parse_split(r, step, where));
  } else if (type == "ByteLevel") {
    *seen_byte_level = true;
    // Defaults of HF's ByteLevel::default() for keys an old file may lack.
    spec.add_prefix_space = r.boolean(step, "add_prefix_space", where, true);
    spec.use_regex = r.boolean(step, "use_regex", where, true);
  } else {
    r.fail("{} of type '{}' is not supported: gptqd implements Split and ByteLevel pre-tokenizers",
           where, type);
  }
}

void parse_pre_tokenizer(const Reader& r, const json& root, TokenizerSpec& spec) {
  const json& pre = root.contains("pre_tokenizer") ? root["pre_tokenizer"] : json();
  if (pre.is_null()) {
    r.fail(
        "pre_tokenizer is null: gptqd implements byte-level tokenizers (a ByteLevel "
        "pre-tokenizer, like BLOOM's and GPT-2's)");
  }
  bool seen_byte_level = false;
  parse_pre_tokenizer_step(r, pre, "pre_tokenizer", &seen_byte_level, spec);
  if (!seen_byte_level) {
    r.fail("pre_tokenizer has no ByteLevel step: gptqd implements byte-level tokenizers only");
  }
}

void parse_merges(const Reader& r, const json& merges, TokenizerSpec& spec) {
  if (!merges.is_array()) r.fail("model.merges must be a list");
  spec.merges.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& m = merges[i];
    if (m.is_string()) {
      // HF splits on ' ' and wants exactly two parts.
      const auto s = m.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) {
        r.fail("model.merges[{}] \"{}\" is not two tokens separated by one space", i, s);
      }
      spec.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      spec.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      r.fail("model.merges[{}] must be \"a b\" or [\"a\", \"b\"], not {}", i, m.dump());
    }
  }
}

void parse_model(const Reader& r, const json& root, TokenizerSpec& spec) {
  if (!root.contains("model") || !root["model"].is_object()) r.fail("model is missing");
  const json& model = root["model"];
  // Old files omit "type"; HF then recognises BPE by its vocab and merges.
  const std::string type = model.contains("type") ? type_of(model) : "BPE";
  if (type != "BPE") {
    r.fail("model of type '{}' is not supported: gptqd implements BPE models", type);
  }
  if (model.contains("dropout") && !model["dropout"].is_null() &&
      !(model["dropout"].is_number() && model["dropout"].get<double>() == 0.0)) {
    r.fail("model.dropout {} is not supported (BPE dropout randomizes encoding): use null",
           model["dropout"].dump());
  }
  if (r.boolean(model, "byte_fallback", "model", false)) {
    r.fail("model.byte_fallback true is not supported");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(key) && !model[key].is_null() &&
        !(model[key].is_string() && model[key].get<std::string>().empty())) {
      r.fail("model.{} {} is not supported: use null", key, model[key].dump());
    }
  }
  if (model.contains("unk_token") && !model["unk_token"].is_null()) {
    spec.bpe.unk_token = r.string(model, "unk_token", "model");
  }
  spec.bpe.fuse_unk = r.boolean(model, "fuse_unk", "model", false);
  spec.bpe.ignore_merges = r.boolean(model, "ignore_merges", "model", false);

  if (!model.contains("vocab") || !model["vocab"].is_object())
    r.fail("model.vocab must be an object");
  const json& vocab = model["vocab"];
  spec.vocab.reserve(vocab.size());
  for (const auto& [token, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
      r.fail("model.vocab[\"{}\"] must be an id in [0, 2^31), not {}", token, id.dump());
    }
    spec.vocab.emplace(token, static_cast<int32_t>(id.get<int64_t>()));
  }
  parse_merges(r, model.contains("merges") ? model["merges"] : json(), spec);
}

void parse_added_tokens(const Reader& r, const json& root, TokenizerSpec& spec) {
  if (!root.contains("added_tokens") || root["added_tokens"].is_null()) return;
  const json& list = root["added_tokens"];
  if (!list.is_array()) r.fail("added_tokens must be a list");
  std::unordered_set<std::string> seen;
  for (size_t i = 0; i < list.size(); ++i) {
    const json& t = list[i];
    const std::string where = fmt::format("added_tokens[{}]", i);
    if (!t.is_object()) r.fail("{} must be an object", where);
    AddedToken tok;
    if (!t.contains("id") || !t["id"].is_number_integer() || t["id"].get<int64_t>() < 0 ||
        t["id"].get<int64_t>() > INT32_MAX) {
      r.fail("{}.id must be an id in [0, 2^31)", where);
    }
    tok.id = static_cast<int32_t>(t["id"].get<int64_t>());
    tok.content = r.string(t, "content", where);
    if (tok.content.empty()) r.fail("{}.content is empty", where);
    if (r.boolean(t, "single_word", where, false)) {
      r.fail("{} ('{}'): single_word true is not supported", where, tok.content);
    }
    tok.lstrip = r.boolean(t, "lstrip", where, false);
    tok.rstrip = r.boolean(t, "rstrip", where, false);
    tok.normalized = r.boolean(t, "normalized", where, true);
    tok.special = r.boolean(t, "special", where, false);
    if (!seen.insert(tok.content).second) r.fail("{}: '{}' is listed twice", where, tok.content);
    spec.added_tokens.push_back(std::move(tok));
  }
}

}  // namespace

TokenizerSpec parse_tokenizer_json(const std::string& path) {
  const Reader r(path);
  const json root = read_json(r);
  if (!root.is_object()) r.fail("the top level must be an object");
  TokenizerSpec spec;
  try {
    if (root.contains("normalizer") && !root["normalizer"].is_null()) {
      r.fail(
          "normalizer of type '{}' is not supported: gptqd implements tokenizers without a "
          "normalizer (\"normalizer\": null, as BLOOM's)",
          type_of(root["normalizer"]));
    }
    parse_pre_tokenizer(r, root, spec);
    parse_model(r, root, spec);
    const json& decoder = root.contains("decoder") ? root["decoder"] : json();
    if (type_of(decoder) != "ByteLevel") {
      r.fail("decoder of type '{}' is not supported: gptqd implements the ByteLevel decoder",
             decoder.is_null() ? "null" : type_of(decoder));
    }
    parse_added_tokens(r, root, spec);
  } catch (const json::exception& e) {  // a key of an unexpected JSON type somewhere
    r.fail("unexpected content: {}", e.what());
  }
  return spec;
}

}  // namespace gptqd::tok
