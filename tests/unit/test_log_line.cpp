// one_line (base/log.h): what every log line prints of its message. Control characters and
// bytes that are not UTF-8 are escaped, printable UTF-8 is kept, a long run is cut around its
// length, a long line of short words is cut as a whole.
#include <gtest/gtest.h>

#include <string>

#include "base/log.h"

namespace gptqd {
namespace {

TEST(OneLine, EscapesControlCharactersAndBadBytes) {
  EXPECT_EQ(one_line("cannot read /m\x1b[31mRED\nX/config.json"),
            "cannot read /m\\x1b[31mRED\\x0aX/config.json");
  EXPECT_EQ(one_line("a\tb\rc\x7f"), "a\\x09b\\x0dc\\x7f");
  EXPECT_EQ(one_line("csi \xc2\x9b bad \xff \xc3"), "csi \\xc2\\x9b bad \\xff \\xc3");
  EXPECT_EQ(one_line("overlong \xc0\xaf surrogate \xed\xa0\x80"),
            "overlong \\xc0\\xaf surrogate \\xed\\xa0\\x80");
}

TEST(OneLine, KeepsPrintableUtf8) {
  const std::string text = "mod\xc3\xa8le \xe2\x80\xa6 \xf0\x9f\x99\x82 ok";
  EXPECT_EQ(one_line(text), text);
}

TEST(OneLine, CutsALongRunAroundItsLength) {
  const std::string path = "/" + std::string(5'000'000, 'a') + "/x.h5";
  const std::string got = one_line("model.path: '" + path + "' does not exist");
  EXPECT_LT(got.size(), kLongRun + 100);
  EXPECT_EQ(got.rfind("model.path: '/aaa", 0), 0u) << got.substr(0, 40);
  EXPECT_NE(got.find("aaa...[" + std::to_string(path.size() + 2) + " bytes, cut]...aaa"),
            std::string::npos)
      << got;
  EXPECT_NE(got.find("aaa/x.h5' does not exist"), std::string::npos) << got;
  // Just at the limit: kept whole.
  const std::string fits(kLongRun, 'b');
  EXPECT_EQ(one_line(fits), fits);
}

TEST(OneLine, NeverSplitsACharacter) {
  std::string run;
  for (int i = 0; i < 400; ++i) run += "\xc3\xa9";  // é: two bytes each
  const std::string got = one_line(run);
  EXPECT_EQ(got.find("\\x"), std::string::npos) << got;
  EXPECT_NE(got.find("bytes, cut"), std::string::npos);
}

TEST(OneLine, CutsALongLineOfShortWords) {
  std::string words;
  for (int i = 0; i < 5000; ++i) words += "ab ";
  const std::string got = one_line(words);
  EXPECT_LT(got.size(), kLongLine + 100);
  EXPECT_NE(got.find("[" + std::to_string(words.size()) + " bytes, cut]"), std::string::npos);
}

}  // namespace
}  // namespace gptqd
