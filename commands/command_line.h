// One command's arguments, defined once with CLI11 and used for everything that shows or reads
// them: parsing, the command's --help, its line in `gptqd --help` and README's Commands block
// (tests/cli/cli_help.sh compares the README with `gptqd --help`).
//
// Each command file has `CommandLine <cmd>_command_line(<Cmd>Options* opt)`, which defines the
// arguments bound to *opt, and `parse_<cmd>_args`, which parses into a fresh struct: a library
// call a test makes without a process.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace CLI {
class App;
class Validator;
}  // namespace CLI

namespace gptqd {

constexpr int kMaxThreads = 4096;  // the largest --threads a command takes

// Thrown by a parse_*_args function for --help or -h, before any other check; what() is the
// command's help text. The command prints it (rank 0) and returns 0.
class HelpRequest : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class CommandLine {
 public:
  // name: the command word ("eval"); summary: one line that follows the synopsis.
  CommandLine(std::string name, std::string summary);
  CommandLine(CommandLine&&) noexcept;
  CommandLine& operator=(CommandLine&&) noexcept;
  ~CommandLine();

  // Where the arguments are defined, in the order the synopsis shows them: add_option and
  // add_flag with a description; an option with a value sets type_name (N, NAME, SIZE), which
  // the synopsis shows. Every option may be given once.
  CLI::App& app();
  // A paragraph after the argument list in --help.
  void set_note(std::string note);

  const std::string& name() const { return name_; }
  const std::string& summary() const { return summary_; }
  // "gptqd eval CONFIG [--run NAME] [--threads N]": optional arguments in brackets.
  std::string synopsis() const;
  // The same in pieces that a wrapped line keeps whole: "gptqd eval", "CONFIG", "[--run NAME]".
  std::vector<std::string> synopsis_parts() const;
  // "usage: " + synopsis, the summary, one line per argument (with -h, --help), the note.
  std::string help() const;

  // Parses args (the words after the command). Throws HelpRequest for --help or -h; otherwise
  // InputError with one line naming the argument for an unknown option or stray argument
  // (reported first), a missing value, a missing required argument, an option given twice, or
  // a value that a check refuses ("--bits: 5 is not one of 2, 3, 4, 8").
  void parse(const std::vector<std::string>& args);

 private:
  void throw_on_extras() const;

  std::string name_, summary_, note_;
  std::unique_ptr<CLI::App> app_;
};

// The words joined by spaces into lines of at most `width` characters (longer words alone on
// theirs): the first line starts with `first`, the others with `continuation`; no final newline.
std::string wrap_words(const std::vector<std::string>& words, const std::string& first,
                       const std::string& continuation, size_t width);

// Checks for CLI::Option::transform() (not check(), which discards the rewritten value). Each
// refuses a value with a message that names it; CLI11 prefixes the option name. integer_check
// accepts a decimal integer (no base prefixes) and rewrites it canonically, then `range` says what
// is wrong with it ("" when nothing); number_check the same for a finite decimal number.
CLI::Validator integer_check(std::function<std::string(int64_t)> range);
CLI::Validator integer_in(int64_t lo, int64_t hi);  // "{n} is out of range [lo, hi]"
CLI::Validator number_check(std::function<std::string(double)> range);

// The --threads N option of quantize and eval (0..kMaxThreads; 0: the node's cores / its ranks).
void add_threads_option(CLI::App& app, int& threads);

// Runs `parse` (a parse_*_args call), which every rank of comm does identically before any
// collective. Returns -1 when it parsed; otherwise the exit code for every rank after rank 0
// printed the help text (0) or logged the "error: " line (1).
int parse_on_every_rank(MPI_Comm comm, const std::function<void()>& parse);

}  // namespace gptqd
