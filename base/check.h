// Error handling shared by every layer: throw, never exit().
// GPTQD_CHECK(cond, fmt, args...) throws gptqd::Error with file:line and a
// formatted message; the top of each rank catches, logs with the rank, and aborts.
#pragma once

#include <spdlog/fmt/fmt.h>

#include <stdexcept>
#include <string>

namespace gptqd {

// Every error gptqd raises on purpose. what() is one line, meant for the user.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

// Bad user input (config, model files, CLI): reported without file:line.
class InputError : public Error {
 public:
  explicit InputError(const std::string& msg) : Error(msg) {}
};

namespace detail {
[[noreturn]] inline void throw_check(const char* file, int line, const std::string& msg) {
  throw Error(fmt::format("{} ({}:{})", msg, file, line));
}
}  // namespace detail

}  // namespace gptqd

// Internal invariant: failing means a bug or a broken environment.
#define GPTQD_CHECK(cond, ...)                                                               \
  do {                                                                                       \
    if (!(cond)) ::gptqd::detail::throw_check(__FILE__, __LINE__, fmt::format(__VA_ARGS__)); \
  } while (0)

// Bad user input: the message must name the culprit (file, key, tensor).
#define GPTQD_INPUT_CHECK(cond, ...)                                  \
  do {                                                                \
    if (!(cond)) throw ::gptqd::InputError(fmt::format(__VA_ARGS__)); \
  } while (0)
