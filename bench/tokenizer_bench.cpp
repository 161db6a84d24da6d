// bench/tokenizer_bench: gptqd's tokenizer on all of data/austen.txt, for each tokenizer.json form
// (the fixtures of tests/fixtures/tokenizer/forms and tiny-bloom), against HF tokenizers timed in
// the same run on the same text (a Python subprocess, single-threaded: TOKENIZERS_PARALLELISM=
// false, RAYON_NUM_THREADS=1). Two ways: the whole file as one string, and each line alone.
// The issue's bar: under 1 s per form on one core.
//
//   build/bench/tokenizer_bench [--python P]
// P defaults to $GPTQD_TOK_PYTHON, else .venv-tok/bin/python in the source tree; without it the
// reference is reported missing and only gptqd's times are printed.
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "io/tokenizer/tokenizer.h"

namespace {

#ifndef GPTQD_SOURCE_DIR
#define GPTQD_SOURCE_DIR "."
#endif

const char* const kForms[] = {"bloom",  "gpt2",  "opt",    "smollm2",
                              "llama3", "qwen2", "llama2", "mistral"};

std::string source_dir() {
  const char* env = std::getenv("GPTQD_SOURCE_DIR");
  return env ? env : GPTQD_SOURCE_DIR;
}

std::string tokenizer_path(const std::string& form) {
  if (form == "bloom") return source_dir() + "/models/tiny-bloom/tokenizer.json";
  return source_dir() + "/tests/fixtures/tokenizer/forms/" + form + "/tokenizer.json";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The reference prints "form whole_s lines_s n_ids" per form.
const char* const kReference = R"PY(
import sys, time
from tokenizers import Tokenizer
text = open(sys.argv[1], encoding="utf-8").read()
lines = text.split("\n")
for form, path in zip(sys.argv[2::2], sys.argv[3::2]):
    tok = Tokenizer.from_file(path)
    t0 = time.perf_counter(); n = len(tok.encode(text, add_special_tokens=False).ids)
    whole = time.perf_counter() - t0
    t0 = time.perf_counter(); tok.encode_batch(lines, add_special_tokens=False)
    per_line = time.perf_counter() - t0
    print(form, whole, per_line, n, flush=True)
)PY";

struct Times {
  double whole = 0, lines = 0;
  size_t n_ids = 0;
};

std::map<std::string, Times> run_reference(const std::string& python, const std::string& text) {
  std::map<std::string, Times> out;
  std::string cmd = "TOKENIZERS_PARALLELISM=false RAYON_NUM_THREADS=1 '" + python + "' -c '" +
                    kReference + "' '" + text + "'";
  for (const char* form : kForms)
    cmd += std::string(" ") + form + " '" + tokenizer_path(form) + "'";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char name[64];
  Times t;
  while (std::fscanf(p, "%63s %lf %lf %zu", name, &t.whole, &t.lines, &t.n_ids) == 4) {
    out[name] = t;
  }
  pclose(p);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string python;
  if (const char* env = std::getenv("GPTQD_TOK_PYTHON")) python = env;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--python") python = argv[i + 1];
  }
  if (python.empty()) python = source_dir() + "/.venv-tok/bin/python";
  const std::string text_path = source_dir() + "/data/austen.txt";
  const std::string text = read_file(text_path);
  std::vector<std::string> lines;
  for (size_t b = 0, nl = 0; nl != std::string::npos; b = nl + 1) {
    nl = text.find('\n', b);
    lines.push_back(text.substr(b, nl == std::string::npos ? std::string::npos : nl - b));
  }
  std::map<std::string, Times> ref;
  const bool have_ref = std::filesystem::exists(python);
  if (have_ref) ref = run_reference(python, text_path);
  std::printf("tokenizer_bench: data/austen.txt, %zu bytes, %zu lines, one thread\n", text.size(),
              lines.size());
  if (!have_ref || ref.empty()) {
    std::printf("reference: HF tokenizers missing (%s); gptqd times only\n", python.c_str());
  }
  std::printf("%-8s %10s %10s %10s %10s %10s %10s  %s\n", "form", "whole_s", "hf_whole_s", "ratio",
              "lines_s", "hf_lines_s", "ratio", "ids");
  int slow = 0;
  for (const char* form : kForms) {
    // A fresh tokenizer per way, so that neither profits from the other's word cache.
    Times t;
    {
      const auto tok = gptqd::Tokenizer::load(tokenizer_path(form));
      const auto t0 = std::chrono::steady_clock::now();
      t.n_ids = tok.encode(text).size();
      t.whole = seconds_since(t0);
    }
    {
      const auto tok = gptqd::Tokenizer::load(tokenizer_path(form));
      const auto t0 = std::chrono::steady_clock::now();
      for (const auto& line : lines) tok.encode(line);
      t.lines = seconds_since(t0);
    }
    const auto it = ref.find(form);
    if (it != ref.end()) {
      std::printf("%-8s %10.3f %10.3f %10.2f %10.3f %10.3f %10.2f  %zu%s\n", form, t.whole,
                  it->second.whole, t.whole / it->second.whole, t.lines, it->second.lines,
                  t.lines / it->second.lines, t.n_ids,
                  it->second.n_ids == t.n_ids ? "" : " (HF: a different count!)");
    } else {
      std::printf("%-8s %10.3f %10s %10s %10.3f %10s %10s  %zu\n", form, t.whole, "-", "-", t.lines,
                  "-", "-", t.n_ids);
    }
    slow += t.whole >= 1.0 || t.lines >= 1.0;
  }
  std::printf("ratio = gptqd / HF (below 1: gptqd faster). %d form(s) at or over 1 s\n", slow);
  return slow == 0 ? 0 : 1;
}
