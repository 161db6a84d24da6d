// tokenizer.json -> TokenizerSpec. Every rejection names the file, the key and, for a component,
// its "type", so a user sees at once which part of their tokenizer gptqd does not implement.
#include "io/tokenizer/tokenizer_json.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_set>

#include "base/check.h"
#include "io/tokenizer/tokenizer_regex.h"
#include "io/tokenizer/tokenizer_unicode.h"

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

// Deepest nesting of arrays and objects in text (strings skipped), stopping once past limit: the
// JSON library's parse is iterative but its destructor and our walk of nested Sequences are not.
size_t json_depth(const std::string& text, size_t limit) {
  size_t depth = 0, max_depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      max_depth = std::max(max_depth, ++depth);
      if (max_depth > limit) break;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return max_depth;
}

json parse_text(const Reader& r, const std::string& text) {
  if (static_cast<int64_t>(text.size()) > kMaxTokenizerJsonBytes) {
    r.fail("{} bytes is more than gptqd reads in a tokenizer.json ({} MiB)", text.size(),
           kMaxTokenizerJsonBytes >> 20);
  }
  if (json_depth(text, kMaxJsonDepth) > kMaxJsonDepth) {
    r.fail("JSON nested deeper than {} levels: not a tokenizer.json", kMaxJsonDepth);
  }
  // JSON text is UTF-8 (RFC 8259): a bad byte anywhere, in a token's string or not, is named by
  // its offset and line here rather than by the parser's "last read" excerpt.
  if (const size_t bad = tok::find_invalid_utf8(text); bad != std::string::npos) {
    const auto line =
        1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(bad), '\n');
    r.fail("not valid JSON: bad UTF-8 byte 0x{:02X} at byte offset {} (line {})",
           static_cast<unsigned char>(text[bad]), bad, line);
  }
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {  // invalid UTF-8 in a string is one too
    r.fail("not valid JSON at byte offset {}: {}", e.byte == 0 ? 0 : e.byte - 1, e.what());
  } catch (const json::exception& e) {  // out_of_range for a number like 1E999
    r.fail("not valid JSON: {}", e.what());
  }
}

std::string read_text(const Reader& r) {
  std::ifstream in(r.path(), std::ios::binary | std::ios::ate);
  if (!in) r.fail("cannot open the file");
  const std::streamoff size = in.tellg();
  if (size > kMaxTokenizerJsonBytes) {
    r.fail("{} bytes is more than gptqd reads in a tokenizer.json ({} MiB)",
           static_cast<int64_t>(size), kMaxTokenizerJsonBytes >> 20);
  }
  in.seekg(0);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
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
    if (regex == kBloomSplitRegex) {
      rule.pattern = SplitPattern::kBloom;
    } else if (regex == kLlama3SplitRegex) {
      rule.pattern = SplitPattern::kLlama3;
    } else if (regex == kQwen2SplitRegex) {
      rule.pattern = SplitPattern::kQwen2;
    } else {
      r.fail(
          "{}.pattern.Regex \"{}\" is not supported: gptqd implements the Split regexes of "
          "BLOOM, Llama 3 and Qwen2 exactly as released (Oniguruma is not built in)",
          where, regex);
    }
  } else if (pattern.is_object() && pattern.contains("String") && pattern["String"].is_string()) {
    rule.literal = pattern["String"].get<std::string>();
    if (rule.literal.empty()) r.fail("{}.pattern.String is empty", where);
  } else {
    r.fail("{}.pattern must be {{\"Regex\": ...}} or {{\"String\": ...}}, not {}", where,
           pattern.dump().substr(0, 80));
  }
  rule.behavior = parse_behavior(r, r.string(step, "behavior", where), where);
  rule.invert = r.boolean(step, "invert", where, false);
  return rule;
}

// One character (UTF-8), as Metaspace's replacement and Strip's content are.
std::string one_char(const Reader& r, const json& obj, const char* key, const std::string& where) {
  const std::string s = r.string(obj, key, where);
  size_t pos = 0;
  if (s.empty() || find_invalid_utf8(s) != std::string::npos ||
      (next_code_point(s, pos), pos != s.size())) {
    r.fail("{}.{} must be one character, not \"{}\"", where, key, s);
  }
  return s;
}

MetaspaceOptions parse_metaspace(const Reader& r, const json& step, const std::string& where) {
  MetaspaceOptions m;
  m.replacement = one_char(r, step, "replacement", where);
  if (step.contains("prepend_scheme") && !step["prepend_scheme"].is_null()) {
    const std::string scheme = r.string(step, "prepend_scheme", where);
    if (scheme == "always") {
      m.prepend = MetaspaceOptions::Prepend::kAlways;
    } else if (scheme == "first") {
      m.prepend = MetaspaceOptions::Prepend::kFirst;
    } else if (scheme == "never") {
      m.prepend = MetaspaceOptions::Prepend::kNever;
    } else {
      r.fail("{}.prepend_scheme '{}' is not always, first or never", where, scheme);
    }
  } else {  // files written before prepend_scheme existed
    m.prepend = r.boolean(step, "add_prefix_space", where, true)
                    ? MetaspaceOptions::Prepend::kAlways
                    : MetaspaceOptions::Prepend::kNever;
  }
  m.split = r.boolean(step, "split", where, true);
  return m;
}

// Flattens (nested) Sequences into spec.splits plus the final ByteLevel or Metaspace.
void parse_pre_tokenizer_step(const Reader& r, const json& step, const std::string& where,
                              TokenizerSpec& spec) {
  const std::string type = type_of(step);
  if (spec.final_step != FinalPreTokenizer::kNone) {
    r.fail("{} ({}) comes after {}: gptqd supports ByteLevel and Metaspace only as the last step",
           where, type,
           spec.final_step == FinalPreTokenizer::kByteLevel ? "ByteLevel" : "Metaspace");
  }
  if (type == "Sequence") {
    if (!step.contains("pretokenizers") || !step["pretokenizers"].is_array()) {
      r.fail("{}.pretokenizers must be a list", where);
    }
    const json& steps = step["pretokenizers"];
    for (size_t i = 0; i < steps.size(); ++i) {
      parse_pre_tokenizer_step(r, steps[i], fmt::format("{}.pretokenizers[{}]", where, i), spec);
    }
  } else if (type == "Split") {
    spec.splits.push_back(parse_split(r, step, where));
  } else if (type == "Digits") {
    SplitRule rule;
    rule.pattern = SplitPattern::kNumeric;
    rule.behavior = r.boolean(step, "individual_digits", where, false) ? SplitBehavior::kIsolated
                                                                       : SplitBehavior::kContiguous;
    spec.splits.push_back(rule);
  } else if (type == "ByteLevel") {
    spec.final_step = FinalPreTokenizer::kByteLevel;
    // Defaults of HF's ByteLevel::default() for keys an old file may lack.
    spec.add_prefix_space = r.boolean(step, "add_prefix_space", where, true);
    spec.use_regex = r.boolean(step, "use_regex", where, true);
  } else if (type == "Metaspace") {
    spec.final_step = FinalPreTokenizer::kMetaspace;
    spec.metaspace = parse_metaspace(r, step, where);
  } else {
    r.fail(
        "{} of type '{}' is not supported: gptqd implements Split, Digits, ByteLevel and "
        "Metaspace pre-tokenizers",
        where, type);
  }
}

void parse_pre_tokenizer(const Reader& r, const json& root, TokenizerSpec& spec) {
  const json& pre = root.contains("pre_tokenizer") ? root["pre_tokenizer"] : json();
  if (!pre.is_null()) parse_pre_tokenizer_step(r, pre, "pre_tokenizer", spec);
  // SentencePiece-converted files (Llama 2, Mistral v0.1) put the "▁" in a normalizer instead.
  if (spec.final_step == FinalPreTokenizer::kNone && spec.normalizer.empty()) {
    r.fail(
        "pre_tokenizer {} has no ByteLevel or Metaspace step and there is no normalizer: gptqd "
        "implements byte-level tokenizers (BLOOM, GPT-2, Llama 3, Qwen2) and SentencePiece-"
        "converted ones (Llama 2, Mistral)",
        pre.is_null() ? "null" : type_of(pre));
  }
}

void parse_normalizer_step(const Reader& r, const json& n, const std::string& where,
                           std::vector<NormalizerStep>& out) {
  const std::string type = type_of(n);
  NormalizerStep step;
  if (type == "Sequence") {
    if (!n.contains("normalizers") || !n["normalizers"].is_array()) {
      r.fail("{}.normalizers must be a list", where);
    }
    const json& list = n["normalizers"];
    for (size_t i = 0; i < list.size(); ++i) {
      parse_normalizer_step(r, list[i], fmt::format("{}.normalizers[{}]", where, i), out);
    }
    return;
  } else if (type == "NFC") {
    step.kind = NormalizerStep::Kind::kNfc;
  } else if (type == "Prepend") {
    step.kind = NormalizerStep::Kind::kPrepend;
    step.a = r.string(n, "prepend", where);
  } else if (type == "Replace") {
    step.kind = NormalizerStep::Kind::kReplace;
    const json& pattern = n.contains("pattern") ? n["pattern"] : json();
    if (!pattern.is_object() || !pattern.contains("String") || !pattern["String"].is_string() ||
        pattern["String"].get<std::string>().empty()) {
      r.fail("{}.pattern {} is not supported: gptqd implements Replace of a literal String", where,
             pattern.dump().substr(0, 80));
    }
    step.a = pattern["String"].get<std::string>();
    step.b = r.string(n, "content", where);
  } else {
    r.fail(
        "{} of type '{}' is not supported: gptqd implements the normalizers NFC, Prepend, "
        "Replace (of a literal) and Sequence",
        where, type);
  }
  out.push_back(std::move(step));
}

void parse_decoder_step(const Reader& r, const json& d, const std::string& where,
                        std::vector<DecoderStep>& out) {
  const std::string type = d.is_null() ? "null" : type_of(d);
  DecoderStep step;
  if (type == "Sequence") {
    if (!d.contains("decoders") || !d["decoders"].is_array()) {
      r.fail("{}.decoders must be a list", where);
    }
    const json& list = d["decoders"];
    for (size_t i = 0; i < list.size(); ++i) {
      parse_decoder_step(r, list[i], fmt::format("{}.decoders[{}]", where, i), out);
    }
    return;
  } else if (type == "ByteLevel") {
    step.kind = DecoderStep::Kind::kByteLevel;
  } else if (type == "ByteFallback") {
    step.kind = DecoderStep::Kind::kByteFallback;
  } else if (type == "Fuse") {
    step.kind = DecoderStep::Kind::kFuse;
  } else if (type == "Replace") {
    step.kind = DecoderStep::Kind::kReplace;
    const json& pattern = d.contains("pattern") ? d["pattern"] : json();
    if (!pattern.is_object() || !pattern.contains("String") || !pattern["String"].is_string() ||
        pattern["String"].get<std::string>().empty()) {
      r.fail("{}.pattern {} is not supported: gptqd implements Replace of a literal String", where,
             pattern.dump().substr(0, 80));
    }
    step.a = pattern["String"].get<std::string>();
    step.b = r.string(d, "content", where);
  } else if (type == "Strip") {
    step.kind = DecoderStep::Kind::kStrip;
    step.a = one_char(r, d, "content", where);
    for (const char* key : {"start", "stop"}) {
      if (!d.contains(key) || !d[key].is_number_unsigned() || d[key].get<uint64_t>() > 1024) {
        r.fail("{}.{} must be a small count", where, key);
      }
    }
    step.start = d["start"].get<int>();
    step.stop = d["stop"].get<int>();
  } else if (type == "Metaspace") {
    step.kind = DecoderStep::Kind::kMetaspace;
    const MetaspaceOptions m = parse_metaspace(r, d, where);
    step.a = m.replacement;
    step.prepend = m.prepend != MetaspaceOptions::Prepend::kNever;
  } else {
    r.fail(
        "{} of type '{}' is not supported: gptqd implements the decoders ByteLevel, Metaspace, "
        "Replace, ByteFallback, Fuse, Strip and Sequence",
        where, type);
  }
  out.push_back(std::move(step));
}

// A special token of a post-processor: ["<s>", 1] (RobertaProcessing, BertProcessing).
SpecialTokenRef token_pair(const Reader& r, const json& p, const char* key,
                           const std::string& where) {
  const json& v = p.contains(key) ? p[key] : json();
  if (!v.is_array() || v.size() != 2 || !v[0].is_string() || !v[1].is_number_integer() ||
      v[1].get<int64_t>() < 0 || v[1].get<int64_t>() > INT32_MAX) {
    r.fail("{}.{} must be [token, id]", where, key);
  }
  return {v[0].get<std::string>(), static_cast<int32_t>(v[1].get<int64_t>())};
}

// TemplateProcessing's "single" template: specials before and after the one sequence $A.
PostProcessor parse_template(const Reader& r, const json& p, const std::string& where) {
  const json& single = p.contains("single") ? p["single"] : json();
  const json& specials = p.contains("special_tokens") ? p["special_tokens"] : json();
  if (!single.is_array()) r.fail("{}.single must be a list", where);
  PostProcessor out;
  bool seen_sequence = false;
  for (size_t i = 0; i < single.size(); ++i) {
    const json& piece = single[i];
    const std::string at = fmt::format("{}.single[{}]", where, i);
    if (piece.is_object() && piece.contains("Sequence")) {
      const json& seq = piece["Sequence"];
      if (seen_sequence || !seq.is_object() || !seq.contains("id") || seq["id"] != "A") {
        r.fail("{} must be the one sequence A of a single-sequence template", at);
      }
      seen_sequence = true;
    } else if (piece.is_object() && piece.contains("SpecialToken") &&
               piece["SpecialToken"].is_object()) {
      const std::string name = r.string(piece["SpecialToken"], "id", at + ".SpecialToken");
      if (!specials.is_object() || !specials.contains(name) || !specials[name].is_object()) {
        r.fail("{} names '{}', which {}.special_tokens does not define", at, name, where);
      }
      const json& def = specials[name];
      const json& ids = def.contains("ids") ? def["ids"] : json();
      const json& toks = def.contains("tokens") ? def["tokens"] : json();
      if (!ids.is_array() || !toks.is_array() || ids.size() != toks.size() || ids.empty()) {
        r.fail("{}.special_tokens['{}'] must have ids and tokens lists of one length", where, name);
      }
      for (size_t k = 0; k < ids.size(); ++k) {
        if (!ids[k].is_number_integer() || ids[k].get<int64_t>() < 0 ||
            ids[k].get<int64_t>() > INT32_MAX || !toks[k].is_string()) {
          r.fail("{}.special_tokens['{}'] has a bad id or token at {}", where, name, k);
        }
        (seen_sequence ? out.suffix : out.prefix)
            .push_back({toks[k].get<std::string>(), static_cast<int32_t>(ids[k].get<int64_t>())});
      }
    } else {
      r.fail("{} must be a SpecialToken or a Sequence", at);
    }
  }
  if (!seen_sequence) r.fail("{}.single has no Sequence", where);
  return out;
}

void parse_post_processor(const Reader& r, const json& p, const std::string& where,
                          PostProcessor& post) {
  if (p.is_null()) return;
  const std::string type = type_of(p);
  PostProcessor inner;
  if (type == "Sequence") {
    if (!p.contains("processors") || !p["processors"].is_array()) {
      r.fail("{}.processors must be a list", where);
    }
    const json& list = p["processors"];
    for (size_t i = 0; i < list.size(); ++i) {
      parse_post_processor(r, list[i], fmt::format("{}.processors[{}]", where, i), post);
    }
    return;
  } else if (type == "ByteLevel") {
    return;  // trims offsets only
  } else if (type == "TemplateProcessing") {
    inner = parse_template(r, p, where);
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    inner.prefix.push_back(token_pair(r, p, "cls", where));
    inner.suffix.push_back(token_pair(r, p, "sep", where));
  } else {
    r.fail(
        "{} of type '{}' is not supported: gptqd implements TemplateProcessing, "
        "RobertaProcessing, BertProcessing, ByteLevel and Sequence",
        where, type);
  }
  // Each processor of a Sequence wraps what the earlier ones made.
  inner.prefix.insert(inner.prefix.end(), post.prefix.begin(), post.prefix.end());
  post.prefix = std::move(inner.prefix);
  post.suffix.insert(post.suffix.end(), inner.suffix.begin(), inner.suffix.end());
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
  spec.bpe.byte_fallback = r.boolean(model, "byte_fallback", "model", false);
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
  if (vocab.size() > kMaxVocabSize) {
    r.fail("model.vocab has {} entries, more than gptqd accepts ({})", vocab.size(), kMaxVocabSize);
  }
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

TokenizerSpec parse_tokenizer_json_text(const std::string& text, const std::string& name) {
  const Reader r(name);
  const json root = parse_text(r, text);
  if (!root.is_object()) r.fail("the top level must be an object");
  TokenizerSpec spec;
  try {
    if (root.contains("normalizer") && !root["normalizer"].is_null()) {
      parse_normalizer_step(r, root["normalizer"], "normalizer", spec.normalizer);
    }
    parse_pre_tokenizer(r, root, spec);
    parse_model(r, root, spec);
    parse_decoder_step(r, root.contains("decoder") ? root["decoder"] : json(), "decoder",
                       spec.decoder);
    parse_post_processor(r, root.contains("post_processor") ? root["post_processor"] : json(),
                         "post_processor", spec.post);
    parse_added_tokens(r, root, spec);
  } catch (const json::exception& e) {  // a key of an unexpected JSON type somewhere
    r.fail("unexpected content: {}", e.what());
  }
  return spec;
}

TokenizerSpec parse_tokenizer_json(const std::string& path) {
  const Reader r(path);
  return parse_tokenizer_json_text(read_text(r), path);
}

}  // namespace gptqd::tok
