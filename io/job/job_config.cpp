#include "io/job/job_config.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <system_error>

#include "base/check.h"

namespace gptqd {
namespace {

// A hostile sweep (several long lists) must not expand into millions of runs.
constexpr int64_t kMaxRuns = 4096;
// A job file is a few hundred bytes; the cap bounds what the YAML parser may allocate (yaml-cpp
// takes ~1 kB per node). The longest useful file, a sweep of 4096 values, is under 100 kB.
constexpr uintmax_t kMaxJobFileBytes = uintmax_t{1} << 20;
// nsamples x seqlen: 2^31 tokens is 8 GiB of ids and far beyond any GPTQ calibration (128 x 2048).
constexpr int64_t kMaxCalibrationTokens = int64_t{1} << 31;
// Values echoed in messages are cut to this many characters to keep errors one line.
constexpr size_t kMaxShown = 48;

const std::vector<std::string> kTopKeys = {"model",    "calibration", "quant", "sweep",
                                           "parallel", "output",      "eval",  "moe"};
const std::vector<std::string> kModelKeys = {"path"};
const std::vector<std::string> kCalibrationKeys = {"text",   "tokens", "nsamples",
                                                   "seqlen", "seed",   "inputs"};
const std::vector<std::string> kQuantKeys = {"bits",         "group_size",    "sym",
                                             "act_order",    "static_groups", "true_sequential",
                                             "damp_percent", "block_size",    "mse_clip"};
const std::vector<std::string> kParallelKeys = {
    "stages",    "device",        "activations", "sequential_passes",
    "precision", "factorization", "transport",   "stall_timeout"};
const std::vector<std::string> kOutputKeys = {"checkpoint"};
const std::vector<std::string> kEvalKeys = {"text", "seqlen"};
const std::vector<std::string> kMoeKeys = {"calibration", "min_tokens", "experts",
                                           "exchange"};
const std::vector<std::string> kDevices = {"auto", "cuda", "cpu"};
const std::vector<std::string> kPlacements = {"auto", "device", "host"};
const std::vector<std::string> kSequentialPasses = {"auto", "one", "partial"};
const std::vector<std::string> kPrecisions = {"auto", "exact", "fast"};
const std::vector<std::string> kFactorizations = {"auto", "replicated", "distributed"};
const std::vector<std::string> kTransports = {"auto", "nccl", "mpi"};

const char* const kYamlInt = "tag:yaml.org,2002:int";
const char* const kYamlFloat = "tag:yaml.org,2002:float";
const char* const kYamlBool = "tag:yaml.org,2002:bool";

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

std::string child_path(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : parent + "." + key;
}

// Control characters escaped and long text cut, so a message stays on one line.
std::string printable(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (out.size() >= kMaxShown) return out + "...";
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      out += fmt::format("\\x{:02x}", u);
    } else {
      out += c;
    }
  }
  return out;
}

// A scalar as the user wrote it: quoted ones keep their quotes.
std::string shown(const YAML::Node& v) {
  return v.Tag() == "!" ? "\"" + printable(v.Scalar()) + "\"" : printable(v.Scalar());
}

std::string kind_of(const YAML::Node& v) {
  switch (v.Type()) {
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Scalar:
      return "the value " + shown(v);
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return "no value";
  }
  return "no value";
}

// Scanners for the YAML 1.2 core forms; hand-written because std::regex recurses per
// character and a hostile file can hold a scalar of millions of digits.
size_t skip_sign(const std::string& s) { return !s.empty() && (s[0] == '-' || s[0] == '+'); }

size_t skip_digits(const std::string& s, size_t i) {
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
  return i;
}

// [-+]?[0-9]+
bool is_decimal_integer(const std::string& s) {
  const size_t start = skip_sign(s);
  const size_t end = skip_digits(s, start);
  return end > start && end == s.size();
}

// [-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?
bool is_decimal_real(const std::string& s) {
  size_t i = skip_sign(s);
  const size_t int_start = i;
  i = skip_digits(s, i);
  size_t digits = i - int_start;
  if (i < s.size() && s[i] == '.') {
    const size_t frac_start = ++i;
    i = skip_digits(s, i);
    digits += i - frac_start;
  }
  if (digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    const size_t exp_start = i;
    i = skip_digits(s, i);
    if (i == exp_start) return false;
  }
  return i == s.size();
}

// Reads an integer written as is_decimal_integer() accepts. False if s is not one.
bool parse_decimal(const std::string& s, bool* negative, uint64_t* magnitude, bool* overflow) {
  if (!is_decimal_integer(s)) return false;
  *negative = s[0] == '-';
  *overflow = false;
  uint64_t m = 0;
  for (size_t i = skip_sign(s); i < s.size(); ++i) {
    const auto d = static_cast<uint64_t>(s[i] - '0');
    if (m > (std::numeric_limits<uint64_t>::max() - d) / 10) {
      *overflow = true;
      return true;
    }
    m = m * 10 + d;
  }
  *magnitude = m;
  return true;
}

// Well-formed UTF-8 (no overlong forms, surrogates or code points above U+10FFFF).
bool is_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      n = 1, cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2, cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // truncated sequence
    for (size_t k = 1; k <= n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    const uint32_t min[] = {0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

// One `key: value` of a mapping.
struct Entry {
  std::string key;
  std::string path;  // e.g. "quant.bits"
  YAML::Mark key_at;
  YAML::Node value;
};

// A checked mapping: keys are names, unique, each one allowed.
struct Section {
  std::string path;  // "" at the top level
  YAML::Mark at;     // where a missing key is reported
  std::vector<Entry> entries;

  const Entry* find(const std::string& key) const {
    for (const auto& e : entries)
      if (e.key == key) return &e;
    return nullptr;
  }
};

// Where a setting of a run came from, for errors about two settings at once.
struct Origin {
  std::string path;
  YAML::Mark at;
};

class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  [[noreturn]] void fail(const YAML::Mark& at, const std::string& path,
                         const std::string& what) const {
    const std::string where =
        at.is_null() ? file_ : fmt::format("{}:{}:{}", file_, at.line + 1, at.column + 1);
    throw InputError(fmt::format("{}: {}: {}", where, path.empty() ? "(top level)" : path, what));
  }

  // node must be a mapping (or nothing, read as an empty one); at is where its key sits.
  Section section(const YAML::Node& node, const std::string& path, const YAML::Mark& at,
                  const std::vector<std::string>& allowed) const {
    Section s{path, at, {}};
    if (node.IsNull()) return s;
    if (!node.IsMap())
      fail(node.Mark(), path,
           fmt::format("expected a mapping with keys {}, got {}", join(allowed), kind_of(node)));
    for (const auto& pair : node) {
      const YAML::Node k = pair.first;
      if (!k.IsScalar())
        fail(k.Mark(), path, fmt::format("expected a key name, got {}", kind_of(k)));
      const std::string key = k.Scalar();
      const std::string key_path = child_path(path, printable(key));
      if (const Entry* first = s.find(key))
        fail(k.Mark(), key_path,
             fmt::format("duplicate key (first at line {}, column {})", first->key_at.line + 1,
                         first->key_at.column + 1));
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
        fail(k.Mark(), key_path, fmt::format("unknown key; allowed keys: {}", join(allowed)));
      s.entries.push_back(Entry{key, key_path, k.Mark(), pair.second});
    }
    return s;
  }

  Section section(const Entry& e, const std::vector<std::string>& allowed) const {
    return section(e.value, e.path, e.key_at, allowed);
  }

  int64_t integer(const YAML::Node& v, const YAML::Mark& null_at, const std::string& path) const {
    bool negative = false, overflow = false;
    uint64_t m = 0;
    const std::string& s = typed_scalar(v, null_at, path, "an integer", kYamlInt);
    if (!parse_decimal(s, &negative, &m, &overflow))
      fail(v.Mark(), path, fmt::format("expected an integer, got {}", shown(v)));
    const uint64_t limit = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    if (overflow || m > limit + (negative ? 1 : 0))
      fail(v.Mark(), path, fmt::format("{} does not fit a 64-bit integer", shown(v)));
    if (negative) return m == limit + 1 ? std::numeric_limits<int64_t>::min() : -int64_t(m);
    return static_cast<int64_t>(m);
  }

  uint64_t unsigned_integer(const YAML::Node& v, const YAML::Mark& null_at,
                            const std::string& path) const {
    bool negative = false, overflow = false;
    uint64_t m = 0;
    const std::string& s = typed_scalar(v, null_at, path, "an integer", kYamlInt);
    if (!parse_decimal(s, &negative, &m, &overflow))
      fail(v.Mark(), path, fmt::format("expected an integer >= 0, got {}", shown(v)));
    if (negative && (overflow || m != 0))
      fail(v.Mark(), path, fmt::format("{} is out of range: must be >= 0", shown(v)));
    if (overflow)
      fail(v.Mark(), path, fmt::format("{} does not fit a 64-bit unsigned integer", shown(v)));
    return m;
  }

  bool boolean(const YAML::Node& v, const YAML::Mark& null_at, const std::string& path) const {
    const std::string& s = typed_scalar(v, null_at, path, "true or false", kYamlBool);
    if (s == "true" || s == "True" || s == "TRUE") return true;
    if (s == "false" || s == "False" || s == "FALSE") return false;
    fail(v.Mark(), path, fmt::format("expected true or false, got {}", shown(v)));
  }

  double real(const YAML::Node& v, const YAML::Mark& null_at, const std::string& path) const {
    const std::string& s = typed_scalar(v, null_at, path, "a number", kYamlFloat);
    if (!is_decimal_real(s))
      fail(v.Mark(), path, fmt::format("expected a number, got {}", shown(v)));
    const double d = std::strtod(s.c_str(), nullptr);
    if (!std::isfinite(d)) fail(v.Mark(), path, fmt::format("{} is out of range", shown(v)));
    return d;
  }

  // Any scalar, read as text; empty text is an error.
  std::string text(const YAML::Node& v, const YAML::Mark& null_at, const std::string& path,
                   const char* expected) const {
    if (v.IsNull()) fail(null_at, path, fmt::format("has no value; expected {}", expected));
    if (!v.IsScalar())
      fail(v.Mark(), path, fmt::format("expected {}, got {}", expected, kind_of(v)));
    if (v.Scalar().empty()) fail(v.Mark(), path, fmt::format("is empty; expected {}", expected));
    // A double-quoted "\0" is a NUL byte: the OS would see the path cut there (another file), and
    // every message naming it would be cut too. Shown escaped.
    if (const size_t nul = v.Scalar().find('\0'); nul != std::string::npos)
      fail(v.Mark(), path,
           fmt::format("{} holds a NUL byte (\\x00 at byte {}); a path or name cannot contain one",
                       shown(v), nul));
    // YAML text is UTF-8; yaml-cpp passes other bytes through but its emitter rewrites them, so
    // the path stored in the checkpoint would name another file.
    if (!is_utf8(v.Scalar())) fail(v.Mark(), path, fmt::format("{} is not valid UTF-8", shown(v)));
    return v.Scalar();
  }

  std::string text(const Entry& e, const char* expected) const {
    return text(e.value, e.key_at, e.path, expected);
  }

 private:
  // A plain (unquoted) scalar, or one tagged with the expected YAML core tag.
  const std::string& typed_scalar(const YAML::Node& v, const YAML::Mark& null_at,
                                  const std::string& path, const char* expected,
                                  const char* core_tag) const {
    if (v.IsNull()) fail(null_at, path, fmt::format("has no value; expected {}", expected));
    if (!v.IsScalar())
      fail(v.Mark(), path, fmt::format("expected {}, got {}", expected, kind_of(v)));
    if (v.Tag() == "!")
      fail(v.Mark(), path,
           fmt::format("expected {}, got the quoted string {} (quoted values are strings: drop "
                       "the quotes)",
                       expected, shown(v)));
    if (v.Tag() != "?" && v.Tag() != core_tag)
      fail(v.Mark(), path,
           fmt::format("expected {}, got a value tagged {}", expected, printable(v.Tag())));
    return v.Scalar();
  }

  std::string file_;
};

std::string format_real(double d) { return fmt::format("{}", d); }
std::string format_bool(bool b) { return b ? "true" : "false"; }

// Reads quant key `key` from v into q, checking its range alone. Returns the value as
// resolved_yaml() writes it.
std::string read_quant_value(const Reader& r, const std::string& key, const YAML::Node& v,
                             const YAML::Mark& null_at, const std::string& path, QuantConfig* q) {
  if (key == "bits") {
    const int64_t b = r.integer(v, null_at, path);
    if (b != 2 && b != 3 && b != 4 && b != 8)
      r.fail(v.Mark(), path, fmt::format("{} is not one of 2, 3, 4, 8", b));
    q->bits = static_cast<int>(b);
    return std::to_string(b);
  }
  if (key == "group_size") {
    const int64_t g = r.integer(v, null_at, path);
    // Capped where the checkpoint's int32 g_idx and every ceil(cols / g) stay exact.
    constexpr int64_t kMaxGroupSize = std::numeric_limits<int32_t>::max();
    if (g == 0 || g < -1 || g > kMaxGroupSize)
      r.fail(v.Mark(), path,
             fmt::format("{} is out of range: use -1 (one group per row) or a group size > 0 "
                         "and <= {}",
                         g, kMaxGroupSize));
    q->group_size = g;
    return std::to_string(g);
  }
  if (key == "damp_percent") {
    const double d = r.real(v, null_at, path);
    if (!(d > 0 && d < 1))
      r.fail(v.Mark(), path,
             fmt::format("{} is out of range: must be > 0 and < 1 (a fraction of the mean of "
                         "diag(H): 0.01 is 1%)",
                         shown(v)));
    // Smaller dampings vanish when added to diag(H) in fp32 (epsilon 1.2e-7): the job would
    // fail later with a message that blames the calibration inputs.
    constexpr double kMinDamp = 1e-6;
    if (d < kMinDamp)
      r.fail(v.Mark(), path,
             fmt::format("{} is too small: below {} the damping is lost in the fp32 rounding of "
                         "diag(H); use 0.01 (1%, the GPTQ default) or at least {}",
                         shown(v), kMinDamp, kMinDamp));
    q->damp_percent = d;
    return format_real(d);
  }
  if (key == "block_size") {
    const int64_t b = r.integer(v, null_at, path);
    if (b <= 0) r.fail(v.Mark(), path, fmt::format("{} is out of range: must be > 0", b));
    q->block_size = b;
    return std::to_string(b);
  }
  bool* flag = key == "sym"               ? &q->sym
               : key == "act_order"       ? &q->act_order
               : key == "static_groups"   ? &q->static_groups
               : key == "true_sequential" ? &q->true_sequential
               : key == "mse_clip"        ? &q->mse_clip
                                          : nullptr;
  GPTQD_CHECK(flag != nullptr, "no reader for quant key {}", key);
  *flag = r.boolean(v, null_at, path);
  return format_bool(*flag);
}

// Settings that are fine alone but not together. Origins are where static_groups and
// group_size were set (null marks for defaults); the later one in the file is blamed.
void check_run(const Reader& r, const QuantConfig& q, const Origin& static_at,
               const Origin& group_at) {
  if (q.static_groups && q.group_size == -1) {
    if (group_at.at.pos > static_at.at.pos)
      r.fail(group_at.at, group_at.path,
             fmt::format("-1 (one group per row) cannot be used with static_groups: true (set "
                         "at line {}, column {}); static groups need group_size > 0",
                         static_at.at.line + 1, static_at.at.column + 1));
    r.fail(static_at.at, static_at.path,
           fmt::format("true needs group_size > 0, but group_size is -1 (set at line {}, "
                       "column {})",
                       group_at.at.line + 1, group_at.at.column + 1));
  }
}

struct SweepValues {
  SweepAxis axis;
  std::vector<YAML::Node> nodes;
  std::vector<std::string> paths;
};

std::vector<SweepValues> read_sweep(const Reader& r, const Section& s) {
  std::vector<SweepValues> out;
  for (const Entry& e : s.entries) {
    if (e.value.IsNull())
      r.fail(e.key_at, e.path, "has no value; expected a list of values, e.g. [2, 3, 4]");
    if (!e.value.IsSequence())
      r.fail(e.value.Mark(), e.path,
             fmt::format("expected a list of values, e.g. [2, 3, 4], got {}", kind_of(e.value)));
    if (e.value.size() == 0)
      r.fail(e.value.Mark(), e.path, "is an empty list; give at least one value");
    // The run cap first: a list of a million values is refused before any is read.
    if (e.value.size() > static_cast<size_t>(kMaxRuns))
      r.fail(e.value.Mark(), e.path,
             fmt::format("lists {} values; a sweep expands to at most {} runs", e.value.size(),
                         kMaxRuns));
    SweepValues sv{{e.key, {}}, {}, {}};
    std::map<std::string, size_t> seen;  // value -> its index, for duplicates
    for (size_t i = 0; i < e.value.size(); ++i) {
      const YAML::Node v = e.value[i];
      const std::string path = fmt::format("{}[{}]", e.path, i);
      QuantConfig scratch;
      const std::string value = read_quant_value(r, e.key, v, e.value.Mark(), path, &scratch);
      const auto [it, fresh] = seen.emplace(value, i);
      if (!fresh)
        r.fail(v.Mark(), path,
               fmt::format("{} is listed twice (also at [{}]); every run must differ", value,
                           it->second));
      sv.axis.values.push_back(value);
      sv.nodes.push_back(v);
      sv.paths.push_back(path);
    }
    out.push_back(std::move(sv));
  }
  int64_t count = 1;
  for (const auto& sv : out) {
    count *= static_cast<int64_t>(sv.nodes.size());
    if (count > kMaxRuns)
      r.fail(s.at, "sweep", fmt::format("expands to more than {} runs", kMaxRuns));
  }
  return out;
}

// The cartesian product of the sweep over the base settings; the first key varies slowest.
std::vector<QuantConfig> expand_runs(const Reader& r, const QuantConfig& base, const Section& quant,
                                     const std::vector<SweepValues>& sweep) {
  Origin base_static, base_group;
  if (const Entry* e = quant.find("static_groups")) base_static = {e->path, e->value.Mark()};
  if (const Entry* e = quant.find("group_size")) base_group = {e->path, e->value.Mark()};

  std::vector<QuantConfig> runs;
  std::set<std::string> names;
  std::vector<size_t> index(sweep.size(), 0);
  while (true) {
    QuantConfig q = base;
    Origin static_at = base_static, group_at = base_group;
    for (size_t a = 0; a < sweep.size(); ++a) {
      const auto& sv = sweep[a];
      const YAML::Node& v = sv.nodes[index[a]];
      read_quant_value(r, sv.axis.key, v, v.Mark(), sv.paths[index[a]], &q);
      if (sv.axis.key == "static_groups") static_at = {sv.paths[index[a]], v.Mark()};
      if (sv.axis.key == "group_size") group_at = {sv.paths[index[a]], v.Mark()};
    }
    check_run(r, q, static_at, group_at);
    q.name = run_name(q);
    GPTQD_CHECK(names.insert(q.name).second, "sweep produced run {} twice", q.name);
    runs.push_back(q);

    size_t a = sweep.size();
    while (a > 0 && ++index[a - 1] == sweep[a - 1].nodes.size()) index[--a] = 0;
    if (a == 0) break;
  }
  return runs;
}

CalibrationConfig read_calibration(const Reader& r, const Section& s) {
  CalibrationConfig c;
  const Entry* text = s.find("text");
  const Entry* tokens = s.find("tokens");
  if (text && tokens) {
    const Entry* later = text->key_at.pos > tokens->key_at.pos ? text : tokens;
    const Entry* first = later == text ? tokens : text;
    r.fail(later->key_at, later->path,
           fmt::format("give either calibration.text or calibration.tokens, not both ({} is at "
                       "line {}, column {})",
                       first->key, first->key_at.line + 1, first->key_at.column + 1));
  }
  if (!text && !tokens)
    r.fail(s.at, "calibration",
           "needs one of text (a text file to tokenize) or tokens (pre-tokenized safetensors)");
  if (text) c.text = r.text(*text, "a text file path");
  if (tokens) c.tokens = r.text(*tokens, "a safetensors file path");
  if (const Entry* e = s.find("nsamples")) {
    c.nsamples = r.integer(e->value, e->key_at, e->path);
    if (c.nsamples <= 0)
      r.fail(e->value.Mark(), e->path, fmt::format("{} is out of range: must be > 0", c.nsamples));
  }
  if (const Entry* e = s.find("seqlen")) {
    c.seqlen = r.integer(e->value, e->key_at, e->path);
    if (c.seqlen <= 0)
      r.fail(e->value.Mark(), e->path, fmt::format("{} is out of range: must be > 0", c.seqlen));
  }
  if (const Entry* e = s.find("seed")) c.seed = r.unsigned_integer(e->value, e->key_at, e->path);
  if (const Entry* e = s.find("inputs")) {
    c.inputs = r.text(*e, "quantized");
    if (c.inputs != "quantized" && c.inputs != "original" && c.inputs != "quantized_in_stage")
      r.fail(
          e->value.Mark(), e->path,
          fmt::format("{} is not one of quantized, original, quantized_in_stage", shown(e->value)));
  }
  // The windows are one array of int32 ids, and every later size is a product with it.
  int64_t total = 0;
  if (__builtin_mul_overflow(c.nsamples, c.seqlen, &total) || total > kMaxCalibrationTokens) {
    const Entry* e = s.find("nsamples") ? s.find("nsamples") : s.find("seqlen");
    r.fail(e->value.Mark(), e->path,
           fmt::format("nsamples x seqlen = {} x {} is more than {} calibration tokens", c.nsamples,
                       c.seqlen, kMaxCalibrationTokens));
  }
  return c;
}

ParallelConfig read_parallel(const Reader& r, const Section& s) {
  ParallelConfig p;
  if (const Entry* e = s.find("stages")) {
    const YAML::Node& v = e->value;
    if (v.IsScalar() && v.Scalar() == "auto") {
      p.stages = 0;
    } else {
      p.stages = r.integer(v, e->key_at, e->path);
      if (p.stages < 0)
        r.fail(v.Mark(), e->path,
               fmt::format("{} is out of range: use auto (or 0) or a number of stages >= 1",
                           p.stages));
    }
  }
  // An enumerated text key: one of `allowed`.
  auto choice = [&](const char* key, const std::vector<std::string>& allowed, std::string& out) {
    const Entry* e = s.find(key);
    if (!e) return;
    out = r.text(*e, ("one of " + join(allowed)).c_str());
    if (std::find(allowed.begin(), allowed.end(), out) == allowed.end())
      r.fail(e->value.Mark(), e->path,
             fmt::format("{} is not one of {}", shown(e->value), join(allowed)));
  };
  choice("device", kDevices, p.device);
  choice("activations", kPlacements, p.activations);
  choice("sequential_passes", kSequentialPasses, p.sequential_passes);
  choice("precision", kPrecisions, p.precision);
  choice("factorization", kFactorizations, p.factorization);
  choice("transport", kTransports, p.transport);
  if (const Entry* e = s.find("stall_timeout")) {
    const YAML::Node& v = e->value;
    if (v.IsScalar() && v.Scalar() == "auto") {
      p.stall_timeout = 0;
    } else {
      const double t = r.real(v, e->key_at, e->path);
      if (!(t >= kMinStallTimeout && t <= kMaxStallTimeout))
        r.fail(v.Mark(), e->path,
               fmt::format("{} is out of range: use auto or a number of seconds from {} to {} "
                           "(30 days)",
                           shown(v), kMinStallTimeout, kMaxStallTimeout));
      p.stall_timeout = t;
    }
  }
  return p;
}

EvalConfig read_eval(const Reader& r, const Section& s) {
  EvalConfig ev;
  if (const Entry* e = s.find("text")) ev.text = r.text(*e, "a text file path");
  if (const Entry* e = s.find("seqlen")) {
    ev.seqlen = r.integer(e->value, e->key_at, e->path);
    if (ev.seqlen <= 0)
      r.fail(e->value.Mark(), e->path, fmt::format("{} is out of range: must be > 0", ev.seqlen));
  }
  return ev;
}

MoeConfig read_moe(const Reader& r, const Section& s) {
  MoeConfig m;
  if (const Entry* e = s.find("calibration")) {
    m.calibration = r.text(*e, "routed");
    if (m.calibration != "routed" && m.calibration != "all")
      r.fail(e->value.Mark(), e->path,
             fmt::format("{} is not one of routed, all", shown(e->value)));
  }
  if (const Entry* e = s.find("experts")) {
    m.experts = r.text(*e, "sharded");
    if (m.experts != "sharded" && m.experts != "replicated")
      r.fail(e->value.Mark(), e->path,
             fmt::format("{} is not one of sharded, replicated", shown(e->value)));
  }
  if (const Entry* e = s.find("exchange")) {
    m.exchange = r.text(*e, "auto");
    if (m.exchange != "auto" && m.exchange != "activations" && m.exchange != "hessians")
      r.fail(e->value.Mark(), e->path,
             fmt::format("{} is not one of auto, activations, hessians", shown(e->value)));
  }
  if (const Entry* e = s.find("min_tokens")) {
    m.min_tokens = r.integer(e->value, e->key_at, e->path);
    if (m.min_tokens < 1)
      r.fail(e->value.Mark(), e->path,
             fmt::format("{} is out of range: must be >= 1 (an expert with no token cannot be "
                         "quantized with GPTQ)",
                         m.min_tokens));
  }
  return m;
}

// Records where each document starts (its first token, and its root node) and nothing else.
class DocumentStarts : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> marks;  // the document's first token
  std::vector<YAML::Mark> roots;  // its root node, as YAML::Node::Mark() reports it
  void OnDocumentStart(const YAML::Mark& mark) override {
    marks.push_back(mark);
    roots.push_back(mark);
    root_seen_ = false;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& m, YAML::anchor_t) override { root(m); }
  void OnAlias(const YAML::Mark& m, YAML::anchor_t) override { root(m); }
  void OnScalar(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                const std::string&) override {
    root(m);
  }
  void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    root(m);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    root(m);
  }
  void OnMapEnd() override {}

 private:
  void root(const YAML::Mark& m) {
    if (!root_seen_ && !roots.empty()) roots.back() = m;
    root_seen_ = true;
  }
  bool root_seen_ = false;
};

// How many documents the text holds, checking that the parser makes progress.
//
// yaml-cpp 0.7's LoadAll never returns on a `,` outside a flow collection (the file `,`, or
// `[a],`): SingleDocParser::HandleNode has no case for a FLOW_ENTRY token in block context, so
// it emits a null document WITHOUT consuming the token, and LoadAll's loop appends null
// documents forever (~270 MB/s). Upstream: jbeder/yaml-cpp#1040 (open), fixed after 0.8.0 by
// PR #1319 (LoadAll stops at the first empty root) and PR #1318 (such input throws). Debian 12
// ships 0.7. Every real document consumes at least one token, so two documents starting at the
// same position are exactly that bug: we drive the parser ourselves and stop there.
size_t count_documents(const Reader& r, const std::string& yaml_text) {
  std::istringstream in(yaml_text);
  YAML::Parser parser(in);
  DocumentStarts starts;
  while (parser.HandleNextDocument(starts)) {
    const size_t n = starts.marks.size();
    if (n >= 2 && starts.marks[n - 1].pos == starts.marks[n - 2].pos) {
      const YAML::Mark& at = starts.marks[n - 1];
      const size_t pos = static_cast<size_t>(at.pos);
      const std::string token = pos < yaml_text.size() ? yaml_text.substr(pos, 1) : "";
      r.fail(at, "YAML syntax error",
             fmt::format("unexpected '{}' outside a [ ] or {{ }} list", printable(token)));
    }
  }
  return starts.marks.size();
}

// The one document of the file, or an error naming what is wrong with the text.
YAML::Node load_document(const Reader& r, const std::string& yaml_text) {
  size_t count = 0;
  YAML::Node doc;
  try {
    count = count_documents(r, yaml_text);
    if (count == 1) doc = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    r.fail(e.mark, "YAML syntax error", printable(e.msg));
  }
  const YAML::Mark start = YAML::Mark();  // line 0, column 0: the top of the file
  if (count == 0 || (count == 1 && doc.IsNull()))
    r.fail(start, "", "the file is empty; a job needs at least model, calibration and output");
  if (count > 1) {
    // The second document's position, for the message; parsing stops there.
    std::istringstream in(yaml_text);
    YAML::Parser parser(in);
    DocumentStarts starts;
    parser.HandleNextDocument(starts);
    parser.HandleNextDocument(starts);
    r.fail(starts.roots.back(), "",
           fmt::format("the file holds {} YAML documents (separated by ---); a job file holds one",
                       count));
  }
  return doc;
}

}  // namespace

std::string run_name(const QuantConfig& q) {
  const QuantConfig defaults;
  std::string name = fmt::format("w{}g{}", q.bits, q.group_size);
  if (q.sym) name += "-sym";
  if (q.act_order) name += "-act";
  if (q.static_groups) name += "-static";
  if (q.mse_clip) name += "-mse";
  if (!q.true_sequential) name += "-seq0";
  if (q.damp_percent != defaults.damp_percent) name += "-damp" + format_real(q.damp_percent);
  if (q.block_size != defaults.block_size) name += fmt::format("-bs{}", q.block_size);
  return name;
}

JobConfig parse_job_config(const std::string& yaml_text, const std::string& source_name) {
  const Reader r(source_name);
  const YAML::Node root = load_document(r, yaml_text);
  if (!root.IsMap())
    r.fail(
        root.Mark(), "",
        fmt::format("expected a mapping with sections {}, got {}", join(kTopKeys), kind_of(root)));
  const Section top = r.section(root, "", root.Mark(), kTopKeys);
  // A missing section reads as an empty one, reported at the top of the file.
  auto sub = [&](const std::string& key, const std::vector<std::string>& allowed) {
    if (const Entry* e = top.find(key)) return r.section(*e, allowed);
    return Section{key, root.Mark(), {}};
  };

  JobConfig job;
  job.source = source_name;

  const Section model = sub("model", kModelKeys);
  const Entry* path = model.find("path");
  if (!path)
    r.fail(model.at, "model.path",
           "missing; give the model directory (config.json, *.safetensors, tokenizer.json)");
  job.model_path = r.text(*path, "a model directory path");

  job.calibration = read_calibration(r, sub("calibration", kCalibrationKeys));

  const Section quant = sub("quant", kQuantKeys);
  for (const Entry& e : quant.entries)
    read_quant_value(r, e.key, e.value, e.key_at, e.path, &job.quant);
  const std::vector<SweepValues> sweep = read_sweep(r, sub("sweep", kQuantKeys));
  for (const auto& sv : sweep) job.sweep.push_back(sv.axis);
  job.runs = expand_runs(r, job.quant, quant, sweep);

  job.parallel = read_parallel(r, sub("parallel", kParallelKeys));

  const Section output = sub("output", kOutputKeys);
  const Entry* checkpoint = output.find("checkpoint");
  if (!checkpoint)
    r.fail(output.at, "output.checkpoint",
           "missing; give the HDF5 checkpoint file to write, e.g. out/job.h5");
  job.checkpoint = r.text(*checkpoint, "a checkpoint file path");

  job.eval = read_eval(r, sub("eval", kEvalKeys));
  job.moe = read_moe(r, sub("moe", kMoeKeys));
  return job;
}

JobConfig load_job_config(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw InputError(fmt::format("{}: cannot read the job file: it is a directory", path));
  if (std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec))
    throw InputError(fmt::format("{}: cannot read the job file: not a regular file", path));
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw InputError(fmt::format("{}: cannot read the job file: {}", path, std::strerror(errno)));
  const uintmax_t size = std::filesystem::file_size(path, ec);
  if (!ec && size > kMaxJobFileBytes)
    throw InputError(fmt::format("{}: the job file is {} bytes; a job file is at most {} bytes",
                                 path, size, kMaxJobFileBytes));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad())
    throw InputError(fmt::format("{}: cannot read the job file: {}", path, std::strerror(errno)));
  return parse_job_config(text.str(), path);
}

std::string JobConfig::resolved_yaml() const {
  YAML::Emitter out;
  out << YAML::BeginMap;

  out << YAML::Key << "model" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "path" << YAML::Value << YAML::DoubleQuoted << model_path;
  out << YAML::EndMap;

  out << YAML::Key << "calibration" << YAML::Value << YAML::BeginMap;
  if (!calibration.text.empty())
    out << YAML::Key << "text" << YAML::Value << YAML::DoubleQuoted << calibration.text;
  if (!calibration.tokens.empty())
    out << YAML::Key << "tokens" << YAML::Value << YAML::DoubleQuoted << calibration.tokens;
  out << YAML::Key << "nsamples" << YAML::Value << calibration.nsamples;
  out << YAML::Key << "seqlen" << YAML::Value << calibration.seqlen;
  out << YAML::Key << "seed" << YAML::Value << calibration.seed;
  out << YAML::Key << "inputs" << YAML::Value << calibration.inputs;
  out << YAML::EndMap;

  out << YAML::Key << "quant" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "bits" << YAML::Value << quant.bits;
  out << YAML::Key << "group_size" << YAML::Value << quant.group_size;
  out << YAML::Key << "sym" << YAML::Value << quant.sym;
  out << YAML::Key << "act_order" << YAML::Value << quant.act_order;
  out << YAML::Key << "static_groups" << YAML::Value << quant.static_groups;
  out << YAML::Key << "true_sequential" << YAML::Value << quant.true_sequential;
  out << YAML::Key << "damp_percent" << YAML::Value << format_real(quant.damp_percent);
  out << YAML::Key << "block_size" << YAML::Value << quant.block_size;
  out << YAML::Key << "mse_clip" << YAML::Value << quant.mse_clip;
  out << YAML::EndMap;

  out << YAML::Key << "sweep" << YAML::Value;
  if (sweep.empty()) out << YAML::Flow;
  out << YAML::BeginMap;
  for (const auto& axis : sweep) {
    out << YAML::Key << axis.key << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (const auto& v : axis.values) out << v;
    out << YAML::EndSeq;
  }
  out << YAML::EndMap;

  out << YAML::Key << "parallel" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "stages" << YAML::Value;
  if (parallel.stages == 0) {
    out << "auto";
  } else {
    out << parallel.stages;
  }
  out << YAML::Key << "device" << YAML::Value << parallel.device;
  out << YAML::Key << "activations" << YAML::Value << parallel.activations;
  out << YAML::Key << "sequential_passes" << YAML::Value << parallel.sequential_passes;
  out << YAML::Key << "precision" << YAML::Value << parallel.precision;
  out << YAML::Key << "factorization" << YAML::Value << parallel.factorization;
  out << YAML::Key << "transport" << YAML::Value << parallel.transport;
  out << YAML::Key << "stall_timeout" << YAML::Value;
  if (parallel.stall_timeout == 0) {
    out << "auto";
  } else {
    out << format_real(parallel.stall_timeout);
  }
  out << YAML::EndMap;

  out << YAML::Key << "output" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "checkpoint" << YAML::Value << YAML::DoubleQuoted << checkpoint;
  out << YAML::EndMap;

  out << YAML::Key << "eval" << YAML::Value << YAML::BeginMap;
  if (!eval.text.empty())
    out << YAML::Key << "text" << YAML::Value << YAML::DoubleQuoted << eval.text;
  out << YAML::Key << "seqlen" << YAML::Value << eval.seqlen;
  out << YAML::EndMap;

  // Only when set: a dense job's resolved text (stored in its checkpoint) stays as it was.
  if (!(moe == MoeConfig{})) {
    out << YAML::Key << "moe" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "calibration" << YAML::Value << moe.calibration;
    out << YAML::Key << "min_tokens" << YAML::Value << moe.min_tokens;
    out << YAML::Key << "experts" << YAML::Value << moe.experts;
    out << YAML::Key << "exchange" << YAML::Value << moe.exchange;
    out << YAML::EndMap;
  }

  out << YAML::EndMap;
  GPTQD_CHECK(out.good(), "emitting the resolved job config failed: {}", out.GetLastError());

  std::string names;
  for (const auto& q : runs) names += (names.empty() ? "" : ", ") + q.name;
  std::string from = source;
  for (char& c : from)
    if (c == '\n' || c == '\r') c = ' ';
  return fmt::format(
      "# gptqd job config resolved from {}: every key with its value\n# runs: {}\n{}\n", from,
      names, out.c_str());
}

bool operator==(const QuantConfig& a, const QuantConfig& b) {
  return a.bits == b.bits && a.group_size == b.group_size && a.sym == b.sym &&
         a.act_order == b.act_order && a.static_groups == b.static_groups &&
         a.true_sequential == b.true_sequential && a.damp_percent == b.damp_percent &&
         a.block_size == b.block_size && a.mse_clip == b.mse_clip && a.name == b.name;
}

bool operator==(const CalibrationConfig& a, const CalibrationConfig& b) {
  return a.text == b.text && a.tokens == b.tokens && a.nsamples == b.nsamples &&
         a.seqlen == b.seqlen && a.seed == b.seed && a.inputs == b.inputs;
}

bool operator==(const ParallelConfig& a, const ParallelConfig& b) {
  return a.stages == b.stages && a.device == b.device && a.activations == b.activations &&
         a.sequential_passes == b.sequential_passes && a.precision == b.precision &&
         a.factorization == b.factorization && a.transport == b.transport &&
         a.stall_timeout == b.stall_timeout;
}

bool operator==(const EvalConfig& a, const EvalConfig& b) {
  return a.text == b.text && a.seqlen == b.seqlen;
}

bool operator==(const MoeConfig& a, const MoeConfig& b) {
  return a.calibration == b.calibration && a.min_tokens == b.min_tokens &&
         a.experts == b.experts && a.exchange == b.exchange;
}

bool operator==(const SweepAxis& a, const SweepAxis& b) {
  return a.key == b.key && a.values == b.values;
}

bool operator==(const JobConfig& a, const JobConfig& b) {
  return a.model_path == b.model_path && a.calibration == b.calibration && a.quant == b.quant &&
         a.sweep == b.sweep && a.runs == b.runs && a.parallel == b.parallel &&
         a.checkpoint == b.checkpoint && a.eval == b.eval && a.moe == b.moe;
}

}  // namespace gptqd
