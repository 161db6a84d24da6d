// safetensors reader and writer: files built byte by byte in the reference
// format, round trips through our writer, and one test per hostile input, each
// asserting an InputError whose message names the file and the culprit.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "base/check.h"
#include "io/model/safetensors.h"
#include "tests/test_util.h"

namespace gptqd {
namespace {

namespace fs = std::filesystem;

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(f.good()) << p;
}

std::string read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// A file in the reference layout: u64 LE header length, header, data.
std::string st_file(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::scratch_dir(std::string("st-") +
                             ::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  void TearDown() override { fs::remove_all(dir_); }

  // No temporary file of the writer (io/files/staged_file.h: ".<name>.gptqd-...") is left.
  bool no_temporary_left() const {
    for (const auto& e : fs::directory_iterator(dir_))
      if (e.path().filename().string().rfind(".", 0) == 0) return false;
    return true;
  }

  // Writes `bytes` to a file and expects open() to fail with a message that
  // names the file and contains every one of `culprits`.
  void expect_rejected(const std::string& bytes, std::vector<std::string> culprits) {
    const std::string path = (dir_ / "bad.safetensors").string();
    write_bytes(path, bytes);
    try {
      SafetensorsFile::open(path);
      FAIL() << "accepted a bad file; expected an error mentioning " << culprits[0];
    } catch (const InputError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(path), std::string::npos) << msg;
      for (const std::string& c : culprits) EXPECT_NE(msg.find(c), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << "message is not one line: " << msg;
    }
  }

  fs::path dir_;
};

TEST_F(SafetensorsTest, ReadsHandBuiltReferenceFile) {
  // Header exactly as the reference writer emits it (compact JSON, metadata
  // first), padded with spaces to a multiple of 8.
  std::string header =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"BF16","shape":[1,2],"data_offsets":[8,12]},)"
      R"("c":{"dtype":"I8","shape":[],"data_offsets":[12,13]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  // 1.0f, -2.0f little-endian; bf16 1.0 (0x3f80), 0.5 (0x3f00); int8 -3.
  const std::string data("\x00\x00\x80\x3f\x00\x00\x00\xc0\x80\x3f\x00\x3f\xfd", 13);
  const std::string path = (dir_ / "ref.safetensors").string();
  write_bytes(path, st_file(header, data));

  const SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.path(), path);
  EXPECT_EQ(f.data_offset(), 8 + header.size());
  ASSERT_EQ(f.tensors().size(), 3u);
  EXPECT_EQ(f.tensors()[0].name, "a");
  EXPECT_EQ(f.tensors()[1].name, "b");
  EXPECT_EQ(f.tensors()[2].name, "c");
  const TensorInfo* b = f.find("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->dtype, DType::BF16);
  EXPECT_EQ(b->shape, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(b->begin, 8u);
  EXPECT_EQ(b->end, 12u);
  EXPECT_EQ(b->numel(), 2);
  EXPECT_EQ(f.find("c")->numel(), 1);  // a scalar
  EXPECT_EQ(f.find("zzz"), nullptr);
  EXPECT_EQ(std::memcmp(f.data(*b), "\x80\x3f\x00\x3f", 4), 0);
  EXPECT_EQ(f.read_f32("a"), (std::vector<float>{1.0f, -2.0f}));
  EXPECT_EQ(f.read_f32("b"), (std::vector<float>{1.0f, 0.5f}));
  EXPECT_EQ(f.read_f32("c"), (std::vector<float>{-3.0f}));
  EXPECT_EQ(f.metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
}

TEST_F(SafetensorsTest, WriterEmitsReferenceBytes) {
  const float a[2] = {1.0f, -2.0f};
  const uint16_t b[1] = {0x3f80};
  const std::string path = (dir_ / "w.safetensors").string();
  write_safetensors(path, {{"a", DType::F32, {2}, a}, {"b", DType::BF16, {1, 1}, b}},
                    {{"format", "pt"}});
  std::string header =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"BF16","shape":[1,1],"data_offsets":[8,10]}})";
  ASSERT_NE(header.size() % 8, 0u);  // so the padding is exercised
  header.append((8 - header.size() % 8) % 8, ' ');
  const std::string expected =
      st_file(header, std::string("\x00\x00\x80\x3f\x00\x00\x00\xc0\x80\x3f", 10));
  EXPECT_EQ(read_bytes(path), expected);
  EXPECT_TRUE(no_temporary_left());
}

TEST_F(SafetensorsTest, RoundTripAllDtypes) {
  const std::vector<float> f32 = test::random_vector(12, 1, -100.f, 100.f);
  std::vector<uint16_t> f16, bf16;
  for (float x : f32) {
    f16.push_back(f32_to_f16(x));
    bf16.push_back(f32_to_bf16(x));
  }
  const std::vector<int32_t> i32 = {-2147483647 - 1, -1, 0, 7, 2147483647, 42};
  const std::vector<uint8_t> u8 = {0, 1, 127, 128, 255};
  const std::vector<double> f64 = {0.25, -1e-3};
  const std::vector<int64_t> i64 = {-(int64_t{1} << 40), 3};
  const std::vector<int16_t> i16 = {-32768, 32767, 5};
  const std::vector<int8_t> i8 = {-128, 127};
  const std::vector<uint8_t> flags = {0, 1, 1};
  const std::string path = (dir_ / "rt.safetensors").string();
  const std::vector<TensorOut> out = {
      {"w.f32", DType::F32, {3, 4}, f32.data()},
      {"w.f16", DType::F16, {12}, f16.data()},
      {"w.bf16", DType::BF16, {2, 2, 3}, bf16.data()},
      {"i32", DType::I32, {6}, i32.data()},
      {"u8", DType::U8, {5}, u8.data()},
      {"f64", DType::F64, {2}, f64.data()},
      {"i64", DType::I64, {1, 2}, i64.data()},
      {"i16", DType::I16, {3}, i16.data()},
      {"i8", DType::I8, {2}, i8.data()},
      {"flags", DType::BOOL, {3}, flags.data()},
      {"empty", DType::F32, {0, 5}, nullptr},
      {"scalar", DType::F32, {}, f32.data()},
  };
  write_safetensors(path, out, {{"k", "v"}, {"format", "pt"}});

  // The header is padded so the data section starts 8-byte aligned.
  const std::string raw = read_bytes(path);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<uint8_t>(raw[i])) << (8 * i);
  EXPECT_EQ(n % 8, 0u);

  const SafetensorsFile f = SafetensorsFile::open(path);
  ASSERT_EQ(f.tensors().size(), out.size());
  // tensors() is in offset order = the order written (the empty tensor ties
  // with its successor at the same offset and sorts first by end).
  uint64_t offset = 0;
  for (const TensorOut& t : out) {
    const TensorInfo* info = f.find(t.name);
    ASSERT_NE(info, nullptr) << t.name;
    EXPECT_EQ(info->dtype, t.dtype) << t.name;
    EXPECT_EQ(info->shape, t.shape) << t.name;
    EXPECT_EQ(info->begin, offset) << t.name;
    const uint64_t bytes = static_cast<uint64_t>(info->numel()) * dtype_size(t.dtype);
    EXPECT_EQ(info->nbytes(), bytes) << t.name;
    if (bytes > 0) {
      EXPECT_EQ(std::memcmp(f.data(*info), t.data, bytes), 0) << t.name;
    }
    offset += bytes;
  }
  EXPECT_EQ(f.read_f32("w.f32"), f32);
  std::vector<float> f16_ref, bf16_ref;
  for (size_t i = 0; i < f32.size(); ++i) {
    f16_ref.push_back(f16_to_f32(f16[i]));
    bf16_ref.push_back(bf16_to_f32(bf16[i]));
  }
  EXPECT_EQ(f.read_f32("w.f16"), f16_ref);
  EXPECT_EQ(f.read_f32("w.bf16"), bf16_ref);
  EXPECT_EQ(f.read_f32("i32"),
            (std::vector<float>{-2147483648.0f, -1.0f, 0.0f, 7.0f, 2147483648.0f, 42.0f}));
  EXPECT_EQ(f.read_f32("u8"), (std::vector<float>{0, 1, 127, 128, 255}));
  EXPECT_EQ(f.read_f32("f64"), (std::vector<float>{0.25f, -1e-3f}));
  EXPECT_EQ(f.read_f32("i64"), (std::vector<float>{-1099511627776.0f, 3.0f}));
  EXPECT_EQ(f.read_f32("i16"), (std::vector<float>{-32768, 32767, 5}));
  EXPECT_EQ(f.read_f32("i8"), (std::vector<float>{-128, 127}));
  EXPECT_TRUE(f.read_f32("empty").empty());
  EXPECT_EQ(f.read_f32("scalar"), (std::vector<float>{f32[0]}));
  EXPECT_EQ(f.metadata(), (std::map<std::string, std::string>{{"k", "v"}, {"format", "pt"}}));
  try {
    f.read_f32("flags");
    FAIL() << "BOOL converted to fp32";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("'flags'"), std::string::npos) << e.what();
  }
}

// The visiting read (the weights digest's) converts exactly as read_f32 and hands over every
// byte once, in order, in pieces of whole elements no larger than kVisitPiece.
TEST_F(SafetensorsTest, VisitingReadSeesEveryByteInOrderInPieces) {
  const auto path = (dir_ / "visit.safetensors").string();
  const size_t n = SafetensorsFile::kVisitPiece + 12345;  // BF16: 2 bytes each, 3 pieces
  std::vector<uint16_t> v(n);
  std::mt19937 gen(3);
  for (auto& x : v) x = static_cast<uint16_t>(gen() & 0x7f7f);
  write_safetensors(path, {{"w", DType::BF16, {static_cast<int64_t>(n)}, v.data()}});
  const SafetensorsFile f = SafetensorsFile::open(path);
  const TensorInfo& t = *f.find("w");
  std::vector<float> plain(n), visited(n);
  f.read_f32_into(t, plain.data());
  std::string seen;
  size_t pieces = 0;
  f.read_f32_into(t, visited.data(), [&](const uint8_t* p, size_t k) {
    EXPECT_LE(k, SafetensorsFile::kVisitPiece);
    EXPECT_EQ(k % 2, 0u);
    seen.append(reinterpret_cast<const char*>(p), k);
    ++pieces;
  });
  EXPECT_EQ(std::memcmp(plain.data(), visited.data(), n * sizeof(float)), 0);
  EXPECT_EQ(pieces, 3u);
  ASSERT_EQ(seen.size(), 2 * n);
  EXPECT_EQ(std::memcmp(seen.data(), v.data(), seen.size()), 0);
}

TEST_F(SafetensorsTest, WriterOverwritesAtomicallyAndEmptyFileIsValid) {
  const std::string path = (dir_ / "e.safetensors").string();
  write_bytes(path, "old contents");
  write_safetensors(path, {});
  EXPECT_EQ(read_bytes(path), le64(8) + "{}      ");
  const SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_TRUE(f.tensors().empty());
  EXPECT_TRUE(f.metadata().empty());
  EXPECT_TRUE(no_temporary_left());
}

TEST_F(SafetensorsTest, WriterRejectsBadTensorsAndUnwritablePath) {
  const float x = 1.0f;
  const std::string path = (dir_ / "w.safetensors").string();
  EXPECT_THROW(write_safetensors(path, {{"a", DType::F32, {1}, &x}, {"a", DType::F32, {1}, &x}}),
               Error);
  EXPECT_THROW(write_safetensors(path, {{"__metadata__", DType::F32, {1}, &x}}), Error);
  EXPECT_THROW(write_safetensors(path, {{"a", DType::F32, {-1}, &x}}), Error);
  EXPECT_THROW(write_safetensors(path, {{"a", DType::F32, {1}, nullptr}}), Error);
  EXPECT_FALSE(fs::exists(path));
  EXPECT_TRUE(no_temporary_left());
  const std::string bad = (dir_ / "no-such-dir" / "w.safetensors").string();
  try {
    write_safetensors(bad, {{"a", DType::F32, {1}, &x}});
    FAIL() << "wrote into a missing directory";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
  }
}

TEST_F(SafetensorsTest, MissingFileNamesPath) {
  const std::string path = (dir_ / "absent.safetensors").string();
  try {
    SafetensorsFile::open(path);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST_F(SafetensorsTest, MissingTensorNamesTensor) {
  const std::string path = (dir_ / "one.safetensors").string();
  const float x = 1.0f;
  write_safetensors(path, {{"present", DType::F32, {1}, &x}});
  const SafetensorsFile f = SafetensorsFile::open(path);
  try {
    f.read_f32("h.0.absent");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("'h.0.absent'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

// ---- hostile inputs -------------------------------------------------------

const char* const kOk = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
const std::string kFour("\0\0\x80\x3f", 4);

TEST_F(SafetensorsTest, RejectsTruncatedFile) {
  expect_rejected(std::string("\x10\x00\x00", 3), {"3 bytes", "too short"});
  expect_rejected("", {"0 bytes"});
}

TEST_F(SafetensorsTest, RejectsHeaderLengthPastEnd) {
  expect_rejected(le64(1000) + "{}", {"header length 1000", "past the end"});
  // The header itself is cut short (file truncated inside the JSON).
  const std::string full = st_file(kOk, kFour);
  expect_rejected(full.substr(0, 20), {"past the end"});
}

TEST_F(SafetensorsTest, RejectsHeaderOver100MB) {
  expect_rejected(le64(100'000'001) + "{}", {"header length 100000001", "exceeds"});
  expect_rejected(le64(~uint64_t{0}) + "{}", {"exceeds"});
}

TEST_F(SafetensorsTest, RejectsBadJson) {
  expect_rejected(st_file(R"({"a": {"dtype": "F32",)", ""), {"header", "invalid JSON"});
  expect_rejected(st_file(std::string("{\"a\xff\":1}"), ""), {"invalid JSON"});
}

TEST_F(SafetensorsTest, RejectsHeaderNotObject) {
  expect_rejected(st_file("[1,2]", ""), {"header is array", "expected a JSON object"});
}

TEST_F(SafetensorsTest, RejectsMalformedEntries) {
  expect_rejected(st_file(R"({"a":[1]})", ""), {"tensor 'a'", "expected an object"});
  expect_rejected(st_file(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", kFour),
                  {"tensor 'a'", "missing 'dtype'"});
  expect_rejected(st_file(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", kFour),
                  {"tensor 'a'", "missing 'shape'"});
  expect_rejected(st_file(R"({"a":{"dtype":"F32","shape":[1]}})", kFour),
                  {"tensor 'a'", "missing 'data_offsets'"});
  expect_rejected(st_file(R"({"a":{"dtype":32,"shape":[1],"data_offsets":[0,4]}})", kFour),
                  {"tensor 'a'", "'dtype' is number"});
  expect_rejected(st_file(R"({"a":{"dtype":"F32","shape":"1","data_offsets":[0,4]}})", kFour),
                  {"tensor 'a'", "'shape' is string"});
  expect_rejected(st_file(R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", kFour),
                  {"tensor 'a'", "expected integers"});
  expect_rejected(st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", kFour),
                  {"tensor 'a'", "data_offsets"});
  expect_rejected(st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,-4]}})", kFour),
                  {"tensor 'a'", "non-negative integers"});
}

TEST_F(SafetensorsTest, RejectsUnknownDtype) {
  expect_rejected(st_file(R"({"a":{"dtype":"F8_E5M2","shape":[4],"data_offsets":[0,4]}})", kFour),
                  {"tensor 'a'", "unknown dtype 'F8_E5M2'"});
}

TEST_F(SafetensorsTest, RejectsNegativeDimension) {
  expect_rejected(st_file(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", kFour),
                  {"tensor 'a'", "negative dimension -1"});
}

TEST_F(SafetensorsTest, RejectsBeginAfterEnd) {
  expect_rejected(st_file(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}})", kFour),
                  {"tensor 'a'", "begin 4 > end 0"});
}

TEST_F(SafetensorsTest, RejectsOverlappingOffsets) {
  expect_rejected(st_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                          R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                          std::string(12, '\0')),
                  {"tensor 'b'", "overlaps tensor 'a'"});
  // Two tensors on the very same bytes (aliasing).
  expect_rejected(st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                          R"("b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                          kFour),
                  {"overlaps"});
}

TEST_F(SafetensorsTest, RejectsGap) {
  expect_rejected(st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                          R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                          std::string(12, '\0')),
                  {"gap of 4 bytes", "tensor 'b'"});
  expect_rejected(
      st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", std::string(8, '\0')),
      {"gap of 4 bytes", "tensor 'a'"});
}

TEST_F(SafetensorsTest, RejectsTrailingBytes) {
  expect_rejected(st_file(kOk, kFour + "xy"), {"2 trailing bytes"});
  expect_rejected(st_file("{}", "z"), {"1 trailing bytes"});
}

TEST_F(SafetensorsTest, RejectsTensorPastEndOfData) {
  expect_rejected(st_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", kFour),
                  {"tensor 'a'", "past the end of the data section"});
}

TEST_F(SafetensorsTest, RejectsShapeByteMismatch) {
  expect_rejected(
      st_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, '\0')),
      {"tensor 'a'", "[3] x F32 is 12 bytes", "span 8 bytes"});
  expect_rejected(st_file(R"({"a":{"dtype":"BF16","shape":[1],"data_offsets":[0,4]}})", kFour),
                  {"tensor 'a'", "[1] x BF16 is 2 bytes"});
}

TEST_F(SafetensorsTest, RejectsShapeProductOverflow) {
  // 2^32 * 2^32 wraps to 0 elements: without the check it would match [0, 0].
  expect_rejected(
      st_file(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", ""),
      {"tensor 'a'", "overflows"});
  // 2^62 elements fit, but x 4 bytes wraps to 0.
  expect_rejected(
      st_file(R"({"a":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}})", ""),
      {"tensor 'a'", "overflows"});
  // A dimension beyond int64.
  expect_rejected(
      st_file(R"({"a":{"dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,0]}})", ""),
      {"tensor 'a'", "too large"});
  // A zero dimension makes the tensor empty whatever the other dims are: valid.
  const std::string ok = (dir_ / "zero.safetensors").string();
  write_bytes(ok,
              st_file(R"({"a":{"dtype":"F32","shape":[4294967296,0],"data_offsets":[0,0]}})", ""));
  EXPECT_EQ(SafetensorsFile::open(ok).find("a")->numel(), 0);
}

TEST_F(SafetensorsTest, RejectsDuplicateNames) {
  expect_rejected(st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                          R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                          std::string(8, '\0')),
                  {"duplicate key 'a'"});
  // Duplicates inside an entry are just as ambiguous.
  expect_rejected(
      st_file(R"({"a":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}})", kFour),
      {"duplicate key 'dtype'", "'a'"});
}

TEST_F(SafetensorsTest, RejectsBadMetadata) {
  expect_rejected(st_file(R"({"__metadata__":{"k":1}})", ""), {"__metadata__", "'k'", "number"});
  expect_rejected(st_file(R"({"__metadata__":["x"]})", ""), {"__metadata__", "array"});
}

TEST_F(SafetensorsTest, ControlCharactersInNamesAreEscaped) {
  expect_rejected(st_file("{\"a\\nb\":{\"dtype\":\"X\",\"shape\":[],\"data_offsets\":[0,0]}}", ""),
                  {"'a\\x0ab'", "unknown dtype 'X'"});
}

// Random corruption of a valid file: open() either rejects it with an
// InputError or accepts a file whose tensors still tile the data exactly.
TEST_F(SafetensorsTest, RandomCorruptionIsRejectedOrConsistent) {
  const std::vector<float> v = test::random_vector(6, 3);
  const uint16_t h[3] = {0x3c00, 0x4000, 0xc000};
  const std::string good_path = (dir_ / "good.safetensors").string();
  write_safetensors(good_path, {{"a", DType::F32, {2, 3}, v.data()}, {"b", DType::F16, {3}, h}},
                    {{"format", "pt"}});
  const std::string good = read_bytes(good_path);
  std::mt19937 gen(99);
  const std::string path = (dir_ / "fuzz.safetensors").string();
  int rejected = 0;
  for (int iter = 0; iter < 2000; ++iter) {
    std::string bytes = good;
    if (iter % 4 == 0) {
      bytes.resize(std::uniform_int_distribution<size_t>(0, good.size() - 1)(gen));
    } else {
      const int flips = 1 + iter % 3;
      for (int k = 0; k < flips; ++k) {
        const size_t at = std::uniform_int_distribution<size_t>(0, bytes.size() - 1)(gen);
        bytes[at] = static_cast<char>(std::uniform_int_distribution<int>(0, 255)(gen));
      }
    }
    write_bytes(path, bytes);
    try {
      const SafetensorsFile f = SafetensorsFile::open(path);
      uint64_t covered = 0;
      for (const TensorInfo& t : f.tensors()) {
        ASSERT_EQ(t.begin, covered);
        covered = t.end;
        if (t.dtype != DType::BOOL) {
          EXPECT_EQ(f.read_f32(t.name).size(), static_cast<size_t>(t.numel()));
        }
      }
      ASSERT_EQ(f.data_offset() + covered, bytes.size());
    } catch (const InputError& e) {
      ++rejected;
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
  EXPECT_GT(rejected, 500);  // truncations alone are a quarter of the runs
}

}  // namespace
}  // namespace gptqd
