#include "commands/command_line.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "base/check.h"
#include "base/log.h"

namespace gptqd {
namespace {

constexpr size_t kMaxShown = 200;  // characters of a user's argument echoed in an error
constexpr size_t kWidth = 100;     // help lines wrap here
constexpr const char* kContinuation = "      ";

// Text as an error line shows it: control characters escaped, so the line stays one line.
std::string escaped(const std::string& s) {
  std::string out;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    out += u < 0x20 || u == 0x7f ? fmt::format("\\x{:02x}", u) : std::string(1, c);
  }
  return out;
}

// A user's argument in an error line: escaped, and a long one cut.
std::string shown(const std::string& s) {
  if (s.size() <= kMaxShown) return escaped(s);
  return fmt::format("{}... ({} characters)", escaped(s.substr(0, kMaxShown)), s.size());
}

bool is_flag(const CLI::Option& o) { return o.get_expected_max() == 0; }

// How an argument appears in the synopsis and the help list: CONFIG, --run NAME, --sym.
std::string shape(const CLI::Option& o) {
  if (o.get_positional()) return o.get_name(true);
  const std::string flag = "--" + o.get_lnames().at(0);
  return is_flag(o) ? flag : flag + " " + o.get_type_name();
}

// The option that `name` (a CLI11 message's prefix: --bits or CONFIG) refers to.
const CLI::Option* find_option(const CLI::App& app, const std::string& name) {
  for (const CLI::Option* o : app.get_options()) {
    if (o->get_name(true) == name ||
        (!o->get_lnames().empty() && "--" + o->get_lnames()[0] == name))
      return o;
  }
  return nullptr;
}

}  // namespace

CommandLine::CommandLine(std::string name, std::string summary)
    : name_(std::move(name)),
      summary_(std::move(summary)),
      app_(std::make_unique<CLI::App>(summary_, "gptqd " + name_)) {
  app_->set_help_flag("-h,--help", "print this help and exit");
  // Unknown words are collected, not thrown at once, so they are reported before a missing
  // required argument (the likelier cause: a misspelt flag).
  app_->allow_extras();
  app_->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::Throw);
}

CommandLine::CommandLine(CommandLine&&) noexcept = default;
CommandLine& CommandLine::operator=(CommandLine&&) noexcept = default;
CommandLine::~CommandLine() = default;

CLI::App& CommandLine::app() { return *app_; }

void CommandLine::set_note(std::string note) { note_ = std::move(note); }

std::vector<std::string> CommandLine::synopsis_parts() const {
  std::vector<std::string> parts = {name_.empty() ? "gptqd" : "gptqd " + name_};
  for (const CLI::Option* o : app_->get_options()) {
    if (o != app_->get_help_ptr())
      parts.push_back(o->get_required() ? shape(*o) : "[" + shape(*o) + "]");
  }
  return parts;
}

std::string CommandLine::synopsis() const {
  std::string s;
  for (const std::string& p : synopsis_parts()) s += (s.empty() ? "" : " ") + p;
  return s;
}

std::string CommandLine::help() const {
  std::vector<std::pair<std::string, std::string>> rows;
  for (const CLI::Option* o : app_->get_options()) {
    if (o != app_->get_help_ptr()) rows.emplace_back(shape(*o), o->get_description());
  }
  rows.emplace_back("-h, --help", app_->get_help_ptr()->get_description());
  size_t width = 0;
  for (const auto& r : rows) width = std::max(width, r.first.size());
  std::string out = wrap_words(synopsis_parts(), "usage: ", kContinuation, kWidth) + "\n";
  out += summary_ + "\n\n";
  for (const auto& r : rows) out += fmt::format("  {:<{}}  {}\n", r.first, width, r.second);
  if (!note_.empty()) out += "\n" + note_ + "\n";
  return out;
}

void CommandLine::throw_on_extras() const {
  const std::vector<std::string> extras = app_->remaining();
  if (extras.empty()) return;
  const std::string& a = extras.front();
  const std::string who = name_.empty() ? "gptqd" : name_;
  if (a.size() > 1 && a[0] == '-') {
    throw InputError(fmt::format("{}: unknown option '{}' ({} --help lists the options)", who,
                                 shown(a), name_.empty() ? "gptqd" : "gptqd " + name_));
  }
  throw InputError(
      fmt::format("{}: unexpected argument '{}'; usage: {}", who, shown(a), synopsis()));
}

void CommandLine::parse(const std::vector<std::string>& args) {
  // argv cannot hold a NUL, but a library caller's strings can: the OS would see a path cut at it
  // (another file), and so would every message naming it.
  for (size_t i = 0; i < args.size(); ++i)
    if (const size_t nul = args[i].find('\0'); nul != std::string::npos)
      throw InputError(fmt::format(
          "{}: argument {} '{}' holds a NUL byte (\\x00 at byte {}); a path cannot contain one",
          name_.empty() ? "gptqd" : name_, i + 1, shown(args[i]), nul));
  // CLI11 takes the words last first.
  std::vector<std::string> words(args.rbegin(), args.rend());
  try {
    app_->parse(words);
  } catch (const CLI::CallForHelp&) {
    throw HelpRequest(help());
  } catch (const CLI::ParseError& e) {
    // CLI11 2.1 converts and checks values before it acts on --help: help wins here.
    if (app_->get_help_ptr()->count() > 0) throw HelpRequest(help());
    throw_on_extras();
    const std::string who = name_.empty() ? "gptqd" : name_;
    const std::string msg = e.what();
    const std::string subject = msg.substr(0, msg.find_first_of(": "));
    if (dynamic_cast<const CLI::RequiredError*>(&e)) {
      for (const CLI::Option* o : app_->get_options()) {
        if (o->get_required() && o->count() == 0)
          throw InputError(fmt::format("{}: missing {}; usage: {}", who, shape(*o), synopsis()));
      }
    } else if (dynamic_cast<const CLI::ArgumentMismatch*>(&e) && find_option(*app_, subject)) {
      // CLI11 2.1: "--threads: 1 required N missing" or "--sym: At Most 1 required but
      // received 2".
      if (msg.find("missing") != std::string::npos)
        throw InputError(fmt::format("{}: {} needs a value", who, subject));
      throw InputError(fmt::format("{}: {} given more than once", who, subject));
    } else if (dynamic_cast<const CLI::ValidationError*>(&e)) {
      throw InputError(escaped(msg));  // "--bits: 5 is not one of 2, 3, 4, 8"
    }
    throw InputError(fmt::format("{}: {}", who, escaped(msg)));
  }
  throw_on_extras();
  // CLI11's Throw policy covers options with values; a repeated flag is refused here alike.
  for (const CLI::Option* o : app_->get_options()) {
    if (is_flag(*o) && o->count() > 1)
      throw InputError(
          fmt::format("{}: {} given more than once", name_.empty() ? "gptqd" : name_, shape(*o)));
  }
}

std::string wrap_words(const std::vector<std::string>& parts, const std::string& first,
                       const std::string& continuation, size_t width) {
  std::string out, line = first;
  bool empty = true;
  for (const std::string& p : parts) {
    if (!empty && line.size() + 1 + p.size() > width) {
      out += line + "\n";
      line = continuation;
      empty = true;
    }
    line += (empty ? "" : " ") + p;
    empty = false;
  }
  return out + line;
}

CLI::Validator integer_check(std::function<std::string(int64_t)> range) {
  return CLI::Validator(
      [range](std::string& v) -> std::string {
        int64_t n = 0;
        try {
          size_t used = 0;
          n = std::stoll(v, &used, 10);
          if (used != v.size()) throw std::invalid_argument(v);
        } catch (const std::exception&) {
          return fmt::format("'{}' is not an integer", shown(v));
        }
        const std::string why = range(n);
        if (!why.empty()) return why;
        v = std::to_string(n);  // CLI11 converts with base 0: "010" would be 8
        return "";
      },
      "");
}

CLI::Validator integer_in(int64_t lo, int64_t hi) {
  return integer_check([lo, hi](int64_t n) {
    return n >= lo && n <= hi ? "" : fmt::format("{} is out of range [{}, {}]", n, lo, hi);
  });
}

CLI::Validator number_check(std::function<std::string(double)> range) {
  return CLI::Validator(
      [range](std::string& v) -> std::string {
        double x = 0;
        try {
          size_t used = 0;
          x = std::stod(v, &used);
          if (used != v.size() || !std::isfinite(x)) throw std::invalid_argument(v);
        } catch (const std::exception&) {
          return fmt::format("'{}' is not a finite number", shown(v));
        }
        const std::string why = range(x);
        if (!why.empty()) return why;
        v = fmt::format("{:.17g}", x);
        return "";
      },
      "");
}

void add_threads_option(CLI::App& app, int& threads) {
  app.add_option("--threads", threads,
                 "CPU threads per rank (default: the cores the rank is bound to, else the node's "
                 "cores / its ranks)")
      ->type_name("N")
      ->transform(integer_in(0, kMaxThreads));
}

int parse_on_every_rank(MPI_Comm comm, const std::function<void()>& parse) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  try {
    parse();
    return -1;
  } catch (const HelpRequest& h) {
    if (rank == 0) {
      fmt::print("{}", h.what());
      std::fflush(stdout);
    }
    return 0;
  } catch (const InputError& e) {
    if (rank == 0) GPTQD_LOG_ERROR("error: {}", e.what());
    return 1;
  }
}

}  // namespace gptqd
