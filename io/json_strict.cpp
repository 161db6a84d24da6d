#include "io/json_strict.h"

#include <unordered_set>
#include <vector>

#include "kernels/check.h"

namespace gptqd {

nlohmann::json parse_json_strict(const char* text, size_t n, const std::string& source) {
  using nlohmann::json;
  // One frame per open object: the keys seen so far and the key under which the
  // object itself sits, so the message can say where the duplicate is.
  struct Frame {
    std::unordered_set<std::string> keys;
    std::string label;
    std::string last_key;
  };
  std::vector<Frame> frames;
  std::string duplicate;  // first duplicate found, already formatted
  json::parser_callback_t cb = [&](int /*depth*/, json::parse_event_t ev, json& parsed) {
    switch (ev) {
      case json::parse_event_t::object_start:
        frames.push_back(Frame{{}, frames.empty() ? std::string() : frames.back().last_key, {}});
        break;
      case json::parse_event_t::object_end:
        if (!frames.empty()) frames.pop_back();
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
      case json::parse_event_t::array_start:
      case json::parse_event_t::array_end:
      case json::parse_event_t::value:
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
    std::string what;
    for (const char c : std::string_view(e.what()).substr(0, 300)) {
      const auto u = static_cast<unsigned char>(c);
      what += (u < 0x20 || u >= 0x7f) ? fmt::format("\\x{:02x}", u) : std::string(1, c);
    }
    if (std::string_view(e.what()).size() > 300) what += "...";
    throw InputError(fmt::format("{}: invalid JSON: {}", source, what));
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
