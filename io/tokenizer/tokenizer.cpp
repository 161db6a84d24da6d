// Tokenizer: HF's pipeline. Raw added tokens; the normalizer on each piece between them; the
// normalized added tokens; Split/Digits steps; ByteLevel or Metaspace; BPE per piece; the
// post-processor's specials when asked. Decode through the file's decoder.
#include "io/tokenizer/tokenizer.h"

#include <algorithm>
#include <string_view>
#include <unordered_map>

#include "base/check.h"
#include "base/log.h"
#include "io/tokenizer/added_tokens.h"
#include "io/tokenizer/bpe.h"
#include "io/tokenizer/byte_level.h"
#include "io/tokenizer/pretokenize.h"
#include "io/tokenizer/tokenizer_decoder.h"
#include "io/tokenizer/tokenizer_json.h"
#include "io/tokenizer/tokenizer_normalizer.h"
#include "io/tokenizer/tokenizer_unicode.h"

namespace gptqd {

struct Tokenizer::Impl {
  std::string path;
  std::vector<tok::NormalizerStep> normalizer;
  tok::AddedTokenMatcher added;
  std::unordered_map<int32_t, std::string> added_by_id;
  std::vector<tok::SplitRule> splits;
  tok::FinalPreTokenizer final_step;
  bool add_prefix_space = false;
  bool use_regex = false;
  tok::MetaspaceOptions metaspace;
  tok::BpeModel bpe;
  tok::PostProcessor post;
  std::vector<tok::DecoderStep> decoder;
  int64_t vocab_size = 0;

  Impl(tok::TokenizerSpec spec, const std::string& file)
      : path(file),
        normalizer(std::move(spec.normalizer)),
        splits(std::move(spec.splits)),
        final_step(spec.final_step),
        add_prefix_space(spec.add_prefix_space),
        use_regex(spec.use_regex),
        metaspace(std::move(spec.metaspace)),
        bpe(std::move(spec.vocab), spec.merges, spec.bpe, file),
        post(std::move(spec.post)),
        decoder(std::move(spec.decoder)) {
    vocab_size = bpe.size();
    std::unordered_map<std::string, int32_t> added_ids;
    int32_t max_added_id = -1;
    for (auto& t : spec.added_tokens) {
      const int32_t id = hf_added_token_id(t.content, added_ids, max_added_id);
      if (id != t.id) {
        GPTQD_LOG_WARN(
            "{}: added token '{}' has id {} in the file but {} in the tokenizer, as HF "
            "tokenizers assigns it; using {}",
            file, t.content, t.id, id, id);
        t.id = id;
      }
      if (!bpe.token_to_id(t.content)) {
        const std::string* other = bpe.id_to_token(id);
        GPTQD_INPUT_CHECK(other == nullptr,
                          "{}: added token '{}' gets id {}, which model.vocab gives to '{}'", file,
                          t.content, id, other ? *other : "");
        ++vocab_size;
      }
      added_ids.emplace(t.content, id);
      max_added_id = std::max(max_added_id, id);
      added_by_id.emplace(id, t.content);
    }
    added = tok::AddedTokenMatcher(std::move(spec.added_tokens));
  }

  // The id HF tokenizers' AddedVocabulary::add_tokens gives an added token while it loads the
  // file's list in order (it warns and ignores the id written in the file): the vocabulary's id
  // if the content is a token, else the next id after the vocabulary and the tokens added so far.
  // max_added_id: the largest id given so far (-1 before the first).
  int32_t hf_added_token_id(const std::string& content,
                            const std::unordered_map<std::string, int32_t>& added_ids,
                            int32_t max_added_id) const {
    if (const auto it = added_ids.find(content); it != added_ids.end()) return it->second;
    if (const auto id = bpe.token_to_id(content)) return *id;
    const auto vocab_len = static_cast<int32_t>(bpe.size());
    if (added_ids.empty()) return vocab_len;
    return max_added_id >= vocab_len || vocab_len == 0 ? max_added_id + 1 : vocab_len;
  }

  // Pre-tokenizer steps after the added tokens, then BPE on each piece. at_start: text starts at
  // offset 0 of the original string (Metaspace's prepend_scheme "first").
  void encode_text(std::string_view text, bool at_start, std::vector<int32_t>& out) const {
    std::vector<std::string_view> pieces{text}, next;
    for (const auto& rule : splits) {
      next.clear();
      for (const auto piece : pieces) tok::apply_split(rule, piece, next);
      pieces.swap(next);
    }
    switch (final_step) {
      case tok::FinalPreTokenizer::kNone:
        for (const auto piece : pieces) bpe.encode_word(piece, out);
        break;
      case tok::FinalPreTokenizer::kByteLevel:
        encode_byte_level(pieces, out);
        break;
      case tok::FinalPreTokenizer::kMetaspace:
        for (const auto piece : pieces) {
          encode_metaspace(piece, at_start && piece.data() == text.data(), out);
        }
        break;
    }
  }

  void encode_byte_level(const std::vector<std::string_view>& pieces,
                         std::vector<int32_t>& out) const {
    std::string prefixed, byte_level;
    std::vector<std::string_view> words;
    for (auto piece : pieces) {
      if (add_prefix_space && piece.front() != ' ') {
        prefixed.assign(" ");
        prefixed.append(piece);
        piece = prefixed;
      }
      words.clear();
      if (use_regex) {
        tok::gpt2_split(piece, words);
      } else {
        words.push_back(piece);
      }
      for (const auto word : words) {
        byte_level.clear();
        tok::byte_level_encode(word, byte_level);
        bpe.encode_word(byte_level, out);
      }
    }
  }

  // HF's Metaspace::pre_tokenize: spaces to the replacement, the prefix, the split.
  void encode_metaspace(std::string_view piece, bool at_start, std::vector<int32_t>& out) const {
    const std::string& rep = metaspace.replacement;
    std::string s;
    for (char c : piece) {
      if (c == ' ') {
        s += rep;
      } else {
        s.push_back(c);
      }
    }
    const bool prepend = metaspace.prepend == tok::MetaspaceOptions::Prepend::kAlways ||
                         (metaspace.prepend == tok::MetaspaceOptions::Prepend::kFirst && at_start);
    if (prepend && !s.empty() && s.compare(0, rep.size(), rep) != 0) s.insert(0, rep);
    if (!metaspace.split) {
      bpe.encode_word(s, out);
      return;
    }
    size_t begin = 0;  // MergedWithNext: each replacement starts a piece
    for (size_t at = s.find(rep, 1); at != std::string::npos; at = s.find(rep, at + 1)) {
      if (at > begin) bpe.encode_word(std::string_view(s).substr(begin, at - begin), out);
      begin = at;
    }
    bpe.encode_word(std::string_view(s).substr(begin), out);
  }

  // The normalized added tokens, then the pre-tokenizer and model, on one piece of the raw text.
  void encode_normalized(std::string_view text, bool at_start, std::vector<int32_t>& out) const {
    for (const auto& seg : added.split_normalized(text)) {
      if (seg.id >= 0) {
        out.push_back(seg.id);
      } else {
        encode_text(seg.text, at_start && seg.text.data() == text.data(), out);
      }
    }
  }

  std::vector<int32_t> encode(const std::string& utf8, bool add_special_tokens,
                              const std::string& source) const {
    const size_t bad = tok::find_invalid_utf8(utf8);
    if (bad != std::string::npos) {
      // Line and column (in bytes, from 1) too: an editor finds a byte by them, not by offset.
      const size_t nl = bad == 0 ? std::string::npos : utf8.rfind('\n', bad - 1);
      const size_t column = nl == std::string::npos ? bad + 1 : bad - nl;
      const auto line =
          1 + std::count(utf8.begin(), utf8.begin() + static_cast<std::ptrdiff_t>(bad), '\n');
      throw InputError(fmt::format(
          "{} is not valid UTF-8: bad byte 0x{:02X} at byte offset {} (line {}, byte {} of the "
          "line)",
          source.empty() ? "text to tokenize" : source, static_cast<unsigned char>(utf8[bad]), bad,
          line, column));
    }
    std::vector<int32_t> ids;
    ids.reserve(utf8.size() / 3 + 1);
    if (add_special_tokens) {
      for (const auto& t : post.prefix) ids.push_back(t.id);
    }
    for (const auto& seg : added.split_raw(utf8)) {
      const bool at_start = seg.text.data() == utf8.data();
      if (seg.id >= 0) {
        ids.push_back(seg.id);
      } else if (normalizer.empty()) {
        encode_normalized(seg.text, at_start, ids);
      } else {
        encode_normalized(tok::normalize(normalizer, seg.text), at_start, ids);
      }
    }
    if (add_special_tokens) {
      for (const auto& t : post.suffix) ids.push_back(t.id);
    }
    return ids;
  }
};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const std::string& tokenizer_json_path) {
  return Tokenizer(
      std::make_unique<Impl>(tok::parse_tokenizer_json(tokenizer_json_path), tokenizer_json_path));
}

Tokenizer Tokenizer::from_json_text(const std::string& json_text, const std::string& name) {
  return Tokenizer(std::make_unique<Impl>(tok::parse_tokenizer_json_text(json_text, name), name));
}

std::vector<int32_t> Tokenizer::encode(const std::string& utf8, const std::string& source) const {
  return impl_->encode(utf8, false, source);
}

std::vector<int32_t> Tokenizer::encode_with_specials(const std::string& utf8,
                                                     const std::string& source) const {
  return impl_->encode(utf8, true, source);
}

std::string Tokenizer::special_tokens_summary() const { return impl_->post.summary(); }

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const int32_t id : ids) {
    const auto added = impl_->added_by_id.find(id);
    const std::string* token =
        added != impl_->added_by_id.end() ? &added->second : impl_->bpe.id_to_token(id);
    GPTQD_INPUT_CHECK(token != nullptr, "token id {} is not in the vocabulary of {} ({} tokens)",
                      id, impl_->path, impl_->vocab_size);
    tokens.push_back(*token);
  }
  return tok::decode_tokens(impl_->decoder, std::move(tokens));
}

int64_t Tokenizer::vocab_size() const { return impl_->vocab_size; }

}  // namespace gptqd
