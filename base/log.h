// The one logging header. Library code logs through these functions and never
// creates sinks; init_logging() (called once per process by the CLI or a test
// main) installs the sink whose pattern carries the rank.
#pragma once

#include <spdlog/spdlog.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace gptqd {

// Installs a stderr logger whose every line reads "[rank R] ...". Level from
// GPTQD_LOG_LEVEL (trace|debug|info|warn|error|off), default info on every rank:
// each pipeline stage reports its own progress. Job-wide lines come from rank 0.
// Every message goes through one_line() on its way out, so a value a message echoes (a path,
// a key, a tensor name from a hostile file) can neither break the line nor flood the terminal.
void init_logging(int rank, int world);

// The rank init_logging() was given (0 before it is called).
int log_rank();

// What the logger prints for `text`: one line of printable UTF-8 whatever the bytes.
//  - Control characters (C0, DEL, C1) and bytes that are not valid UTF-8 become \xNN, so a
//    newline or an escape sequence in a path is shown, not obeyed.
//  - A run of more than kLongRun bytes without a space (a path, a value) keeps its first and
//    last bytes around "...[N bytes, cut]...", N the run's length; the whole line is cut the
//    same way beyond kLongLine bytes.
// Messages meant to span lines are logged one line per call.
constexpr size_t kLongRun = 300;
constexpr size_t kLongLine = 4000;
std::string one_line(std::string_view text);

// A size for a message: "141 KiB" below 1 MiB (rounded up), "3.3 MiB" below 1 GiB, else
// "1.75 GiB" (powers of 1024).
std::string format_bytes(uint64_t bytes);

}  // namespace gptqd

#define GPTQD_LOG_INFO(...) spdlog::info(__VA_ARGS__)
#define GPTQD_LOG_WARN(...) spdlog::warn(__VA_ARGS__)
#define GPTQD_LOG_ERROR(...) spdlog::error(__VA_ARGS__)
#define GPTQD_LOG_DEBUG(...) spdlog::debug(__VA_ARGS__)
