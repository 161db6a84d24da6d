#include "io/model/fp8_config.h"

#include <algorithm>
#include <regex>

#include "base/check.h"
#include "io/model/config_json.h"
#include "io/model/json_strict.h"

namespace gptqd {
namespace {

using nlohmann::json;

// A config value in a message: a string as its text, anything else as JSON; quoted, shortened.
std::string shown(const json& v) {
  return quote_name(v.is_string() ? v.get<std::string>() : v.dump(), 60);
}

// A key that must hold `want` (a string) when present and not null.
void expect_string(const json& q, const char* key, const std::string& want, const std::string& src,
                   const std::string& why) {
  const auto it = q.find(key);
  if (it == q.end() || it->is_null()) return;
  GPTQD_INPUT_CHECK(it->is_string() && it->get<std::string>() == want,
                    "{}: quantization_config.{} is {}; gptqd reads only {} ({})", src, key,
                    shown(*it), quote_name(want), why);
}

std::vector<std::string> patterns(const json& q, const char* key, const std::string& src) {
  const auto it = q.find(key);
  std::vector<std::string> out;
  if (it == q.end() || it->is_null()) return out;
  GPTQD_INPUT_CHECK(it->is_array(),
                    "{}: quantization_config.{} is {}, expected a list of module "
                    "names or null",
                    src, key, json_type_name(*it));
  for (const json& p : *it) {
    GPTQD_INPUT_CHECK(p.is_string(), "{}: quantization_config.{} holds {}, expected module names",
                      src, key, json_type_name(p));
    const std::string s = p.get<std::string>();
    try {
      std::regex re(s);
    } catch (const std::regex_error&) {
      throw InputError(fmt::format("{}: quantization_config.{} holds {}, not a valid pattern", src,
                                   key, quote_name(s, 60)));
    }
    out.push_back(s);
  }
  return out;
}

}  // namespace

Fp8Weights parse_fp8_config(const json& q, const std::string& src) {
  GPTQD_INPUT_CHECK(q.is_object(), "{}: quantization_config is {}, expected an object", src,
                    json_type_name(q));
  static const std::vector<std::string> kKeys = {"quant_method",
                                                 "fmt",
                                                 "activation_scheme",
                                                 "weight_block_size",
                                                 "scale_fmt",
                                                 "dequantize",
                                                 "modules_to_not_convert",
                                                 "ignored_layers",
                                                 "expert_dtype",
                                                 "modules_to_convert"};
  for (const auto& [k, v] : q.items()) {
    GPTQD_INPUT_CHECK(std::find(kKeys.begin(), kKeys.end(), k) != kKeys.end(),
                      "{}: quantization_config key {} is not known to gptqd's FP8 reader; it may "
                      "change the weights' values, so the model is refused",
                      src, quote_name(k, 60));
  }
  const auto method = q.find("quant_method");
  GPTQD_INPUT_CHECK(method != q.end() && method->is_string() && method->get<std::string>() == "fp8",
                    "{}: quantization_config.quant_method is {}; gptqd reads checkpoints stored "
                    "quantized only in FP8 with block scales (quant_method \"fp8\"); give it a "
                    "bf16, fp16 or fp32 copy of the weights",
                    src, method == q.end() ? std::string("missing") : shown(*method));
  expect_string(q, "fmt", "e4m3", src, "the e4m3fn elements DeepSeek-V3 and Kimi-K2 ship");
  expect_string(q, "activation_scheme", "dynamic", src,
                "static activation scales would belong to an FP8 forward gptqd does not run");
  expect_string(q, "expert_dtype", "fp8", src, "FP4-packed experts are not read");
  if (q.contains("scale_fmt") && !q["scale_fmt"].is_null() &&
      !(q["scale_fmt"].is_string() && q["scale_fmt"].get<std::string>() == "ue8m0"))
    expect_string(q, "scale_fmt", "float", src, "or \"ue8m0\"; both store fp32 weight scales");
  if (q.contains("dequantize"))
    GPTQD_INPUT_CHECK(q["dequantize"].is_boolean(),
                      "{}: quantization_config.dequantize is {}, expected true or false", src,
                      json_type_name(q["dequantize"]));
  const auto convert = q.find("modules_to_convert");
  GPTQD_INPUT_CHECK(convert == q.end() || convert->is_null(),
                    "{}: quantization_config.modules_to_convert is not supported (only "
                    "modules_to_not_convert)",
                    src);

  Fp8Weights f;
  f.on = true;
  f.block_rows = f.block_cols = 128;
  const auto bs = q.find("weight_block_size");
  if (bs != q.end()) {
    const bool ok =
        bs->is_array() && bs->size() == 2 && std::all_of(bs->begin(), bs->end(), [](const json& x) {
          return x.is_number_integer() && x.get<int64_t>() > 0 &&
                 x.get<int64_t>() <= (int64_t{1} << 30);
        });
    GPTQD_INPUT_CHECK(ok,
                      "{}: quantization_config.weight_block_size is {}; gptqd reads FP8 weights "
                      "with block scales, weight_block_size [rows, cols] of positive integers "
                      "(DeepSeek-V3: [128, 128]; null, one scale per tensor, is not read)",
                      src, shown(*bs));
    f.block_rows = (*bs)[0].get<int64_t>();
    f.block_cols = (*bs)[1].get<int64_t>();
  }
  f.modules_to_not_convert = patterns(q, "modules_to_not_convert", src);
  if (f.modules_to_not_convert.empty())
    f.modules_to_not_convert = patterns(q, "ignored_layers", src);
  return f;
}

std::string fp8_unconverted_by(const Fp8Weights& f, const std::string& module) {
  for (const std::string& p : f.modules_to_not_convert) {
    if (module.size() >= p.size() && module.compare(module.size() - p.size(), p.size(), p) == 0)
      return p;
    // re.match(p + boundary): some prefix of the name that ends at a module boundary (the end, a
    // '.' next, or a '.' just before) matches the whole pattern.
    const std::regex re(p);
    for (size_t end = 0; end <= module.size(); ++end) {
      const bool boundary =
          end == module.size() || module[end] == '.' || (end > 0 && module[end - 1] == '.');
      if (boundary && std::regex_match(module.begin(), module.begin() + end, re)) return p;
    }
  }
  return "";
}

}  // namespace gptqd
