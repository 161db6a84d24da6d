#include "io/model/json_strict.h"

#include <unordered_set>
#include <vector>

#include "base/check.h"

namespace gptqd {

namespace {

// `s` cut to `max_len` characters ("..." after) with control and non-ASCII bytes escaped.
std::string printable(std::string_view s, size_t max_len) {
  std::string out;
  for (const char c : s.substr(0, max_len)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u >= 0x7f) ? fmt::format("\\x{:02x}", u) : std::string(1, c);
  }
  if (s.size() > max_len) out += "...";
  return out;
}

}  // namespace

nlohmann::json parse_json_strict(const char* text, size_t n, const std::string& source) {
  using nlohmann::json;
  // One frame per open object or array: the keys seen so far and the key under which the
  // object itself sits (for the duplicate-key message), and for arrays the index of the element
  // being read, so that an error can name where it is ("rope_scaling.factor", "a[2]").
  struct Frame {
    bool array = false;
    std::unordered_set<std::string> keys;
    std::string label;
    std::string last_key;
    size_t index = 0;
  };
  std::vector<Frame> frames;
  std::string duplicate;  // first duplicate found, already formatted
  // The key of the innermost enclosing object ("" at top level).
  const auto enclosing_key = [&frames] {
    for (auto f = frames.rbegin(); f != frames.rend(); ++f)
      if (!f->array) return f->last_key;
    return std::string();
  };
  // A value of the innermost array is complete: the next one has the next index.
  const auto next_element = [&frames] {
    if (!frames.empty() && frames.back().array) ++frames.back().index;
  };
  // Where the parser is: "rope_scaling.factor", "layers[3].size"; "top level" outside any.
  const auto where = [&frames] {
    std::string path;
    for (const Frame& f : frames) {
      path += f.array ? fmt::format("[{}]", f.index) : (path.empty() ? "" : ".") + f.last_key;
    }
    return path.empty() ? std::string("top level") : "key " + quote_name(path, 80);
  };
  json::parser_callback_t cb = [&](int /*depth*/, json::parse_event_t ev, json& parsed) {
    switch (ev) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        // Bounds the parser's memory (a frame and a DOM node per level) on "[[[[...".
        GPTQD_INPUT_CHECK(frames.size() < kMaxJsonStrictDepth,
                          "{}: JSON nested deeper than {} levels at {}", source,
                          kMaxJsonStrictDepth, where());
        frames.push_back(Frame{ev == json::parse_event_t::array_start, {}, enclosing_key(), {}, 0});
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        if (!frames.empty()) frames.pop_back();
        next_element();
        break;
      case json::parse_event_t::key: {
        Frame& f = frames.back();
        f.last_key = parsed.get<std::string>();
        if (!f.keys.insert(f.last_key).second && duplicate.empty()) {
          duplicate = frames.size() == 1
                          ? fmt::format("duplicate key {} at top level", quote_name(f.last_key))
                          : fmt::format("duplicate key {} in object {}", quote_name(f.last_key),
                                        quote_name(f.label));
        }
        break;
      }
      case json::parse_event_t::value:
        next_element();
        break;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text, text + n, cb, /*allow_exceptions=*/true);
  } catch (const json::parse_error& e) {
    // The message quotes the last token read, which a hostile file can make
    // megabytes long or fill with invalid UTF-8: cut it and escape odd bytes.
    throw InputError(fmt::format("{}: invalid JSON: {}", source, printable(e.what(), 300)));
  } catch (const json::out_of_range& e) {
    // A number beyond double's range (1e400): nlohmann names the number but not where it is.
    const std::string_view what = e.what();
    const size_t q = what.find('\'');
    const std::string_view number =
        q == std::string_view::npos ? what : what.substr(q + 1, what.rfind('\'') - q - 1);
    throw InputError(fmt::format("{}: number {} at {} is out of range (beyond +-1.8e308)", source,
                                 printable(number, 40), where()));
  }
  GPTQD_INPUT_CHECK(duplicate.empty(), "{}: {}", source, duplicate);
  return j;
}

std::string quote_name(std::string_view s, size_t max_len) {
  std::string out = "'";
  size_t count = 0;
  for (char c : s) {
    if (count++ == max_len) {
      out += "...";
      break;
    }
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      out += fmt::format("\\x{:02x}", u);
    } else {
      out += c;
    }
  }
  out += "'";
  return out;
}

const char* json_type_name(const nlohmann::json& v) { return v.type_name(); }

}  // namespace gptqd
