// PyRandom against CPython's random module and the calibration draw against the GPTQ
// reference's draw, both run with /usr/bin/python3 (3.11); the scripts are quoted per test.
#include <gtest/gtest.h>

#include <numeric>

#include "io/job/calibration.h"
#include "io/job/py_random.h"
#include "base/check.h"

namespace gptqd {
namespace {

struct SeedCase {
  uint64_t seed;
  std::vector<uint32_t> bits32;  // [random.getrandbits(32) for _ in range(4)]
  std::vector<uint32_t> mixed;   // [random.getrandbits(k) for k in (1, 7, 31, 0, 32, 16)]
  // After a fresh random.seed(seed), in this order:
  std::vector<int64_t> r0_10;    // [random.randint(0, 10) for _ in range(6)]
  std::vector<int64_t> rm5_5;    // [random.randint(-5, 5) for _ in range(4)]
  std::vector<int64_t> r0_2p31;  // [random.randint(0, 2**31) for _ in range(3)]
  std::vector<int64_t> r0_2p40;  // [random.randint(0, 2**40) for _ in range(3)]
  std::vector<int64_t> small;  // [random.randint(7, 7), random.randint(0, 1), random.randint(1, 6)]
  std::vector<int64_t> austen;  // [random.randint(0, 4025028 - 2048 - 1) for _ in range(3)]
};

// import random
// for seed in (0, 1, 42, 2**40 + 7):
//     random.seed(seed)
//     a = [random.getrandbits(32) for _ in range(4)]
//     b = [random.getrandbits(k) for k in (1, 7, 31, 0, 32, 16)]
//     random.seed(seed)
//     c = [random.randint(0, 10) for _ in range(6)]
//     d = [random.randint(-5, 5) for _ in range(4)]
//     e = [random.randint(0, 2**31) for _ in range(3)]
//     f = [random.randint(0, 2**40) for _ in range(3)]
//     g = [random.randint(7, 7), random.randint(0, 1), random.randint(1, 6)]
//     h = [random.randint(0, 4025028 - 2048 - 1) for _ in range(3)]
const std::vector<SeedCase>& seed_cases() {
  static const std::vector<SeedCase> cases = {
      {0,
       {3626764237u, 1654615998u, 3255389356u, 3823568514u},
       {0, 5, 556019485u, 0, 4146640122u, 33506},
       {6, 6, 0, 4, 8, 7},
       {1, -1, 2, 0},
       {938204377, 598176026, 1210484339},
       {553189221793, 679236027177, 1036505304606},
       {7, 1, 4},
       {1326225, 2562245, 2686130}},
      {1,
       {577090037u, 2444712010u, 3639700191u, 3445702192u},
       {1, 8, 547756574u, 0, 506456969u, 32468},
       {2, 9, 1, 4, 1, 7},
       {2, 2, 5, 1},
       {901749037, 403123852, 2095328386},
       {858288075698, 586028475693, 227398206114},
       {7, 0, 1},
       {106727, 2724393, 2270848}},
      {42,
       {2746317213u, 478163327u, 107420369u, 3184935163u},
       {0, 31, 479341423u, 0, 599310825u, 48265},
       {10, 1, 0, 4, 3, 3},
       {-3, -4, 5, 3},
       {373399426, 1812140441, 136505587},
       {201991441006, 512040151179, 921463507190},
       {7, 1, 5},
       {1166816, 3394997, 3646109}},
      {(uint64_t{1} << 40) + 7,
       {2635837658u, 3209733218u, 3500038837u, 4028389051u},
       {1, 81, 1224904698u, 0, 3030506883u, 31190},
       {9, 10, 9, 7, 4, 9},
       {-3, 3, 1, 3},
       {1559734921, 1688693473, 1902582600},
       {819896354548, 978798470615, 301420011173},
       {7, 0, 3},
       {317794, 3166157, 1541999}},
  };
  return cases;
}

TEST(PyRandom, GetrandbitsMatchesCPython) {
  for (const auto& c : seed_cases()) {
    SCOPED_TRACE("seed " + std::to_string(c.seed));
    PyRandom rng(c.seed);
    std::vector<uint32_t> bits32, mixed;
    for (int i = 0; i < 4; ++i) bits32.push_back(rng.getrandbits(32));
    for (int k : {1, 7, 31, 0, 32, 16}) mixed.push_back(rng.getrandbits(k));
    EXPECT_EQ(bits32, c.bits32);
    EXPECT_EQ(mixed, c.mixed);
  }
}

TEST(PyRandom, RandintMatchesCPython) {
  for (const auto& c : seed_cases()) {
    SCOPED_TRACE("seed " + std::to_string(c.seed));
    PyRandom rng(c.seed);
    auto draw = [&rng](int64_t a, int64_t b, int n) {
      std::vector<int64_t> v;
      for (int i = 0; i < n; ++i) v.push_back(rng.randint(a, b));
      return v;
    };
    EXPECT_EQ(draw(0, 10, 6), c.r0_10);
    EXPECT_EQ(draw(-5, 5, 4), c.rm5_5);
    EXPECT_EQ(draw(0, int64_t{1} << 31, 3), c.r0_2p31);
    EXPECT_EQ(draw(0, int64_t{1} << 40, 3), c.r0_2p40);
    EXPECT_EQ((std::vector<int64_t>{rng.randint(7, 7), rng.randint(0, 1), rng.randint(1, 6)}),
              c.small);
    EXPECT_EQ(draw(0, 4025028 - 2048 - 1, 3), c.austen);
  }
}

TEST(PyRandom, RejectsBadArguments) {
  PyRandom rng(0);
  EXPECT_THROW(rng.getrandbits(33), InputError);
  EXPECT_THROW(rng.getrandbits(-1), InputError);
  EXPECT_THROW(rng.randint(5, 4), InputError);
}

// The GPTQ reference's draw (IST-DASLab/gptq datautils.py get_wikitext2), torch left out:
//   def draw(tokens, nsamples, seqlen, seed):
//       random.seed(seed)
//       out = []
//       for _ in range(nsamples):
//           i = random.randint(0, len(tokens) - seqlen - 1)
//           j = i + seqlen
//           out.append(tokens[i:j])
//       return out
//   tokens = [(k * 7919 + 13) % 4099 for k in range(40)]
std::vector<int32_t> small_tokens() {
  std::vector<int32_t> t;
  for (int k = 0; k < 40; ++k) t.push_back((k * 7919 + 13) % 4099);
  return t;
}

TEST(Calibration, DrawMatchesGptqReference) {
  // draw(tokens, 5, 8, 0)
  const std::vector<int32_t> expected = {
      1515, 1236, 957,  678,  399,  120,  3940, 3661, 957,  678,  399,  120,  3940, 3661,
      3382, 3103, 3554, 3275, 2996, 2717, 2438, 2159, 1880, 1601, 3747, 3468, 3189, 2910,
      2631, 2352, 2073, 1794, 3661, 3382, 3103, 2824, 2545, 2266, 1987, 1708};
  EXPECT_EQ(draw_calibration_windows(small_tokens(), 5, 8, 0), expected);
}

TEST(Calibration, DrawNearlyWholeText) {
  // [tokens.index(w[0]) for w in draw(tokens, 6, 38, 7)] == [1, 0, 1, 0, 0, 0]
  const auto tokens = small_tokens();
  const auto windows = draw_calibration_windows(tokens, 6, 38, 7);
  ASSERT_EQ(windows.size(), 6u * 38u);
  const std::vector<int> starts = {1, 0, 1, 0, 0, 0};
  for (size_t s = 0; s < starts.size(); ++s) {
    for (int t = 0; t < 38; ++t) EXPECT_EQ(windows[s * 38 + t], tokens[starts[s] + t]);
  }
}

TEST(Calibration, DrawGptqPaperShape) {
  // big = list(range(300000)); w = draw(big, 128, 2048, 0); starts = [x[0] for x in w]
  // starts[:6] == [201979, 220500, 21225, 135746, 268055, 254766]; sum(starts) == 19016786
  std::vector<int32_t> big(300000);
  std::iota(big.begin(), big.end(), 0);
  const auto windows = draw_calibration_windows(big, 128, 2048, 0);
  ASSERT_EQ(windows.size(), 128u * 2048u);
  const std::vector<int32_t> first = {201979, 220500, 21225, 135746, 268055, 254766};
  int64_t sum = 0;
  for (size_t s = 0; s < 128; ++s) {
    const int32_t start = windows[s * 2048];
    if (s < first.size()) {
      EXPECT_EQ(start, first[s]);
    }
    EXPECT_EQ(windows[s * 2048 + 2047], start + 2047);  // contiguous
    sum += start;
  }
  EXPECT_EQ(sum, 19016786);
}

TEST(Calibration, TooShortTextSaysHowShort) {
  const std::vector<int32_t> tokens(8, 1);
  try {
    draw_calibration_windows(tokens, 1, 8, 0);
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("8 tokens"), std::string::npos) << msg;
    EXPECT_NE(msg.find("at least 9"), std::string::npos) << msg;
  }
  EXPECT_EQ(draw_calibration_windows(std::vector<int32_t>(9, 1), 2, 8, 0).size(), 16u);
  EXPECT_TRUE(draw_calibration_windows(tokens, 0, 4, 0).empty());
  EXPECT_THROW(draw_calibration_windows(tokens, -1, 4, 0), InputError);
  EXPECT_THROW(draw_calibration_windows(tokens, 1, 0, 0), InputError);
}

TEST(Calibration, EvalWindowsAreConsecutive) {
  std::vector<int32_t> tokens(23);
  std::iota(tokens.begin(), tokens.end(), 100);
  int64_t nwin = -1;
  const auto w = eval_windows(tokens, 5, &nwin);
  EXPECT_EQ(nwin, 4);
  ASSERT_EQ(w.size(), 20u);
  for (size_t i = 0; i < w.size(); ++i) EXPECT_EQ(w[i], 100 + static_cast<int32_t>(i));
  EXPECT_EQ(eval_windows(tokens, 23, &nwin).size(), 23u);
  EXPECT_EQ(nwin, 1);
  EXPECT_THROW(eval_windows(tokens, 24, &nwin), InputError);
  EXPECT_THROW(eval_windows(tokens, 0, &nwin), InputError);
}

}  // namespace
}  // namespace gptqd
