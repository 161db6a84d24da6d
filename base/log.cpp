#include "base/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>

namespace gptqd {
namespace {

int g_rank = 0;

// Bytes of a UTF-8 sequence starting at s[i] that decodes to a printable character (RFC 3629:
// no overlong forms, no surrogates, nothing above U+10FFFF, no C1 control), else 0.
size_t printable_utf8(std::string_view s, size_t i) {
  const auto at = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = at(i);
  if (c >= 0x20 && c < 0x7f) return 1;
  size_t n = 0;
  unsigned lo = 0x80, hi = 0xbf;  // allowed range of the second byte
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
    if (c == 0xc2) lo = 0xa0;  // U+0080..U+009F: C1 controls (0x9b is a CSI)
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  if (i + n > s.size() || at(i + 1) < lo || at(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k)
    if (at(i + k) < 0x80 || at(i + k) > 0xbf) return 0;
  return n;
}

void append_escaped(std::string_view s, std::string& out) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = printable_utf8(s, i);
    if (n > 0) {
      out.append(s.data() + i, n);
      i += n;
    } else {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(s[i]));
      ++i;
    }
  }
}

// Moves a cut point back to the start of a UTF-8 sequence so that no character is split.
size_t char_boundary(std::string_view s, size_t pos) {
  while (pos > 0 && pos < s.size() && (static_cast<unsigned char>(s[pos]) & 0xc0) == 0x80) --pos;
  return pos;
}

// `s` with its middle replaced by the marker when it is longer than `limit`: head and tail
// keep 3/4 and 1/8 of the limit (the start of a path says where, its end says which file).
void append_cut(std::string_view s, size_t limit, std::string& out) {
  if (s.size() <= limit) {
    append_escaped(s, out);
    return;
  }
  const size_t head = char_boundary(s, limit * 3 / 4);
  const size_t tail = char_boundary(s, s.size() - limit / 8);
  append_escaped(s.substr(0, head), out);
  out += fmt::format("...[{} bytes, cut]...", s.size());
  append_escaped(s.substr(tail), out);
}

// The message part of every log line (the pattern's %*).
class OneLineFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const std::string text = one_line(std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(text.data(), text.data() + text.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<OneLineFlag>();
  }
};

}  // namespace

std::string one_line(std::string_view text) {
  std::string out;
  out.reserve(std::min(text.size(), kLongLine) + 16);
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(' ', start);
    if (end == std::string_view::npos) end = text.size();
    append_cut(text.substr(start, end - start), kLongRun, out);
    if (end < text.size()) out += ' ';
    start = end + 1;
  }
  if (out.size() <= kLongLine) return out;
  // Many short words: the line as a whole is cut (escapes are already in place, so the cut
  // only has to keep them whole, which cutting at a space or a character boundary does).
  std::string whole;
  const size_t head = char_boundary(out, kLongLine * 3 / 4);
  const size_t tail = char_boundary(out, out.size() - kLongLine / 8);
  whole.append(out, 0, head);
  whole += fmt::format("...[{} bytes, cut]...", out.size());
  whole.append(out, tail, std::string::npos);
  return whole;
}

void init_logging(int rank, int world) {
  g_rank = rank;
  auto logger = spdlog::stderr_color_mt("gptqd-" + std::to_string(rank));
  const int width = static_cast<int>(std::to_string(world > 0 ? world - 1 : 0).size());
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  formatter->add_flag<OneLineFlag>('*').set_pattern(
      fmt::format("[%H:%M:%S.%e] [rank {:>{}}] [%^%l%$] %*", rank, width));
  logger->set_formatter(std::move(formatter));
  spdlog::level::level_enum level = spdlog::level::info;
  if (const char* env = std::getenv("GPTQD_LOG_LEVEL")) level = spdlog::level::from_str(env);
  logger->set_level(level);
  spdlog::set_default_logger(logger);
}

int log_rank() { return g_rank; }

std::string format_bytes(uint64_t bytes) {
  constexpr uint64_t kMiB = uint64_t{1} << 20, kGiB = uint64_t{1} << 30;
  if (bytes < kMiB) return fmt::format("{} KiB", (bytes + 1023) / 1024);
  const double b = static_cast<double>(bytes);
  if (bytes < kGiB) return fmt::format("{:.1f} MiB", b / kMiB);
  return fmt::format("{:.2f} GiB", b / kGiB);
}

}  // namespace gptqd
