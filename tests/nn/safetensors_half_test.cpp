// F16 and BF16 safetensors (how pretrained models are published) read as float32: every value
// must be exactly what PyTorch's .float() gives (tests/fixtures/safetensors/gen_half.py wrote both).
#include <gtest/gtest.h>

#include <bit>
#include <cstring>
#include <filesystem>

#include "nn/safetensors.h"
#include "test_util.h"

namespace mg::nn {
namespace {

namespace fs = std::filesystem;

TEST(SafetensorsHalf, F16AndBF16WidenToFloat32Exactly) {
  const fs::path path = fs::path(__FILE__).parent_path().parent_path() / "fixtures" / "safetensors" / "half.safetensors";
  SafetensorsContents contents = load_safetensors(path.string());
  for (const char* name : {"f16", "bf16"}) {
    const Tensor& got = contents.tensors.at(name);
    const Tensor& want = contents.tensors.at(std::string(name) + "_as_f32");
    ASSERT_EQ(got.dtype(), DType::Float32) << name;
    ASSERT_EQ(got.shape(), want.shape()) << name;
    ASSERT_GT(got.numel(), 1000);
    for (int64_t i = 0; i < got.numel(); ++i)  // bit for bit (NaN included)
      ASSERT_EQ(std::bit_cast<uint32_t>(got.data<float>()[i]), std::bit_cast<uint32_t>(want.data<float>()[i]))
          << name << "[" << i << "]: " << got.data<float>()[i] << " vs " << want.data<float>()[i];
  }
}

TEST(SafetensorsHalf, TheSizeCheckUsesTwoBytesAnElement) {
  const std::string header = R"({"a": {"dtype": "F16", "shape": [3], "data_offsets": [0, 12]}})";
  std::string bytes(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(bytes.data(), &n, 8);
  bytes += header + std::string(12, '\0');
  EXPECT_TRUE(test::throws_error([&] { parse_safetensors(bytes, "half.st"); }, "half.st", "needs 6 bytes"));
}

}  // namespace
}  // namespace mg::nn
