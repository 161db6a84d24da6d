// Regressions of what the fuzz harnesses (tests/fuzz, docs/fuzzing.md) and issue 14 found in the
// parsers of model files: each input is refused with one InputError naming the file, the place
// and the culprit.
#include <gtest/gtest.h>

#include <string>

#include "io/model/json_strict.h"
#include "io/model/model_config.h"
#include "base/check.h"

namespace gptqd {
namespace {

std::string input_error(const std::string& json_text, const std::string& src = "m/config.json") {
  try {
    parse_model_config(json_text, src);
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no error)";
}

// Issue 14 item 5: "number overflow parsing '1e400'" named neither the file nor the key.
TEST(FuzzRegressions, NumberBeyondDoubleNamesFileKeyAndValue) {
  EXPECT_EQ(input_error(R"({"model_type": "bloom", "layer_norm_epsilon": 1e400})"),
            "m/config.json: number 1e400 at key 'layer_norm_epsilon' is out of range (beyond "
            "+-1.8e308)");
  EXPECT_EQ(input_error(R"({"rope_scaling": {"factor": -1E999}})"),
            "m/config.json: number -1E999 at key 'rope_scaling.factor' is out of range (beyond "
            "+-1.8e308)");
  EXPECT_EQ(input_error(R"({"a": [1, {"b": [0, 2, 9e999]}]})"),
            "m/config.json: number 9e999 at key 'a[1].b[2]' is out of range (beyond +-1.8e308)");
  EXPECT_EQ(input_error("1e400"),
            "m/config.json: number 1e400 at top level is out of range (beyond +-1.8e308)");
}

TEST(FuzzRegressions, OverflowMessageIsOneShortLine) {
  const std::string digits(5000, '9');
  const std::string msg = input_error("{\"k\": " + digits + "e9}");
  EXPECT_NE(msg.find("m/config.json: number 9999"), std::string::npos) << msg;
  EXPECT_NE(msg.find("... at key 'k'"), std::string::npos) << msg;
  EXPECT_LT(msg.size(), 200u);
  EXPECT_EQ(msg.find('\n'), std::string::npos);
}

TEST(FuzzRegressions, DeepNestingIsRefusedWithItsPath) {
  const std::string deep = "{\"x\": " + std::string(100, '[') + std::string(100, ']') + "}";
  const std::string msg = input_error(deep);
  EXPECT_EQ(msg.rfind("m/config.json: JSON nested deeper than 64 levels at key 'x[0][0]", 0), 0u)
      << msg;
  // 64 levels are fine for the parser (the family reader then ignores the unknown key).
  const std::string ok = R"({"model_type": "bloom", "n_layer": 1, "hidden_size": 8, "n_head": 2,)"
                         R"( "vocab_size": 16, "x": )" +
                         std::string(63, '[') + std::string(63, ']') + "}";
  EXPECT_NO_THROW(parse_json_strict(ok, "ok.json"));
}

// Arrays now have frames of their own: a duplicate inside an object in an array still names
// the object's key, as before.
TEST(FuzzRegressions, DuplicateKeyInsideArrayNamesItsObject) {
  try {
    parse_json_strict(R"({"list": [{"a": 1, "a": 2}]})", "d.json");
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "d.json: duplicate key 'a' in object 'list'");
  }
}

}  // namespace
}  // namespace gptqd
