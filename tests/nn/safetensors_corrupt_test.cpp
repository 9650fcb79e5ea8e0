// Malformed safetensors input: every problem is an mg::Error naming the source, never a crash
// (run this suite under ASan/UBSan too). Generated variants (every truncation, random byte
// flips) and hand-made headers for each rule.
#include <cstring>
#include <filesystem>
#include <fstream>

#include "nn/safetensors.h"
#include "test_util.h"

namespace mg::nn {
namespace {

std::string valid_file_bytes() {
  StateDict s;
  s.set("a", from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3}));
  s.set("b", from_vector<double>({0.5, -0.5}, {2}));
  s.set("c", from_vector<int64_t>({7}, {1}));
  s.set("d", zeros({0}));
  const std::string path = (std::filesystem::path(::testing::TempDir()) / "fuzz_base.safetensors").string();
  save_safetensors(path, s, {{"k", "v"}});
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// 8-byte length + header + data.
std::string file_with(const std::string& header, const std::string& data) {
  uint64_t n = header.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &n, 8);
  return out + header + data;
}

// Loads bytes; passes when they give an mg::Error naming the source, or a valid result.
::testing::AssertionResult error_or_valid(const std::string& bytes, bool* threw = nullptr) {
  try {
    SafetensorsContents c = parse_safetensors(bytes, "fuzz.safetensors");
    for (const auto& [name, t] : c.tensors)
      if (!t.defined() || (!t.is_contiguous() && t.numel() > 0))
        return ::testing::AssertionFailure() << "bad tensor " << name;
    if (threw) *threw = false;
  } catch (const Error& e) {
    if (std::string(e.what()).find("safetensors: fuzz.safetensors: ") != 0)
      return ::testing::AssertionFailure() << "message does not name the source: " << e.what();
    if (threw) *threw = true;
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "not an mg::Error: " << e.what();
  }
  return ::testing::AssertionSuccess();
}

TEST(SafetensorsCorrupt, EveryTruncationThrows) {
  const std::string bytes = valid_file_bytes();
  ASSERT_GT(bytes.size(), 100u);
  ASSERT_TRUE(error_or_valid(bytes));
  for (size_t len = 0; len < bytes.size(); ++len) {
    bool threw = false;
    ASSERT_TRUE(error_or_valid(bytes.substr(0, len), &threw)) << "length " << len;
    EXPECT_TRUE(threw) << "a truncation to " << len << " bytes loaded";
  }
  // Trailing bytes are as wrong as missing ones.
  EXPECT_TRUE(test::throws_error([&] { parse_safetensors(bytes + "x", "f"); }, "the tensors cover"));
  // And from disk, a few lengths (the file reader has its own code path).
  const std::string path = (std::filesystem::path(::testing::TempDir()) / "truncated.safetensors").string();
  for (size_t len : {size_t{0}, size_t{7}, size_t{8}, size_t{20}, bytes.size() - 1}) {
    std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(len));
    EXPECT_TRUE(test::throws_error([&] { load_safetensors(path); }, "safetensors: " + path + ": ")) << len;
  }
}

TEST(SafetensorsCorrupt, RandomByteFlipsNeverCrash) {
  const std::string bytes = valid_file_bytes();
  uint64_t header_end = 0;
  std::memcpy(&header_end, bytes.data(), 8);
  header_end += 8;
  Generator gen(123);
  int errors = 0, loaded = 0;
  for (int trial = 0; trial < 4000; ++trial) {
    std::string variant = bytes;
    const int flips = 1 + static_cast<int>(gen.next_int(0, 4));
    for (int f = 0; f < flips; ++f) {
      // Mostly in the length and the header (where the parser lives), sometimes anywhere.
      const uint64_t limit = trial % 4 == 0 ? variant.size() : header_end;
      const auto pos = static_cast<size_t>(gen.next_int(0, static_cast<int64_t>(limit)));
      // Half the time a byte that keeps JSON-looking text: digits, quotes, brackets.
      const char* alphabet = "0123456789\"[]{},:-.eE \\";
      variant[pos] = trial % 2 ? alphabet[gen.next_int(0, 23)] : static_cast<char>(gen.next_int(0, 256));
    }
    bool threw = false;
    ASSERT_TRUE(error_or_valid(variant, &threw)) << "trial " << trial;
    (threw ? errors : loaded) += 1;
  }
  EXPECT_GT(errors, 1000);  // the test exercises the error paths
  std::cout << errors << " variants rejected, " << loaded << " still valid\n";
}

struct BadHeader {
  const char* header;
  size_t data_bytes;
  const char* message;
};

TEST(SafetensorsCorrupt, EachRuleHasItsMessage) {
  const BadHeader cases[] = {
      {"[1, 2]", 0, "does not start with '{'"},
      {"{\"a\": ", 0, "not valid JSON"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}} trailing", 4, "not valid JSON"},
      {"{\"a\": 5}", 0, "tensor 'a': expected an object"},
      {"{\"a\": {\"dtype\": \"Q7\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4, "unknown dtype 'Q7'"},
      {"{\"a\": {\"dtype\": \"I32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8,
       "dtype I32, which mambagrad does not support"},
      {"{\"a\": {\"dtype\": 3, \"shape\": [1], \"data_offsets\": [0, 4]}}", 4, "dtype must be a string"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", 4,
       "shape must be a non-negative integer"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1.0], \"data_offsets\": [0, 4]}}", 4, "non-negative integer"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": 1, \"data_offsets\": [0, 4]}}", 4, "shape must be an array"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", 4, "data_offsets must be [begin, end]"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 0]}}", 4, "end before they begin"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 8]}}", 4,
       "go past the end of the 4-byte data buffer"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 4]}}", 4,
       "needs 8 bytes but data_offsets [0, 4] hold 4"},
      {"{\"a\": {\"dtype\": \"F64\", \"shape\": [4294967296, 4294967296], \"data_offsets\": [0, 8]}}", 8, "too large"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": [0, 9223372036854775807, 9223372036854775807], \"data_offsets\": [0, "
       "0]}}",
       0, "too large"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, "
       "\"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
       8, "'b' at [4, 8) overlaps"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}", 8,
       "gap: bytes [0, 4) belong to no tensor"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 6,
       "cover 4 bytes but the data buffer has 6"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4], \"extra\": 1}}", 4,
       "unexpected field 'extra'"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1]}}", 4, "missing field 'data_offsets'"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, "
       "\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}",
       4, "the key 'a' twice"},
      {"{\"__metadata__\": {\"k\": 1}}", 0, "__metadata__ value of 'k' must be a string"},
      {"{\"__metadata__\": [\"k\"]}", 0, "__metadata__ must be an object"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": [[[[[[1]]]]]], \"data_offsets\": [0, 4]}}", 4, "nests deeper"},
      {"{\"a\": \"\xff\"}", 0, "not valid JSON"},
  };
  for (const BadHeader& c : cases) {
    std::string bytes = file_with(c.header, std::string(c.data_bytes, '\0'));
    EXPECT_TRUE(test::throws_error([&] { parse_safetensors(bytes, "case.safetensors"); },
                                   "safetensors: case.safetensors: ", c.message))
        << c.header;
  }
}

TEST(SafetensorsCorrupt, HeaderLengthChecks) {
  std::string bytes = file_with("{}", "");
  uint64_t huge = 200'000'000;
  std::memcpy(bytes.data(), &huge, 8);
  EXPECT_TRUE(test::throws_error([&] { parse_safetensors(bytes, "f"); }, "larger than the limit of 100000000 bytes"));
  uint64_t past = 3;
  std::memcpy(bytes.data(), &past, 8);
  EXPECT_TRUE(test::throws_error([&] { parse_safetensors(bytes, "f"); },
                                 "the header length 3 runs past the end of the 10-byte file"));
  uint64_t max = ~uint64_t{0};
  std::memcpy(bytes.data(), &max, 8);
  EXPECT_TRUE(test::throws_error([&] { parse_safetensors(bytes, "f"); }, "larger than the limit"));
  EXPECT_TRUE(test::throws_error([&] { parse_safetensors("abc", "f"); }, "only 3 bytes"));
  // The smallest valid file: no tensors.
  EXPECT_TRUE(parse_safetensors(file_with("{}", ""), "f").tensors.empty());
  // Deep nesting does not exhaust the stack.
  EXPECT_TRUE(
      test::throws_error([&] { parse_safetensors(file_with("{\"a\":" + std::string(200000, '['), ""), "f"); }, "f: "));
}

}  // namespace
}  // namespace mg::nn
