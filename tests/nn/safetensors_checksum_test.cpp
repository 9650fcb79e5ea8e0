// Bit rot: every flipped bit in a saved file's data buffer is caught by the tensors' SHA-256
// checksums (nn/safetensors_checksums.h), with an error naming the tensor it hit.
#include <cstring>
#include <filesystem>
#include <fstream>

#include "nn/safetensors.h"
#include "nn/safetensors_checksums.h"
#include "test_util.h"

namespace mg::nn {
namespace {

namespace fs = std::filesystem;

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

StateDict three_tensors() {
  StateDict s;
  s.set("embedding.weight", test::random({5, 4}, 1, DType::Float32));
  s.set("norm.weight", test::random({4}, 2, DType::Float64));
  s.set("optimizer.step", from_vector<int64_t>({7}, {1}));
  return s;
}

TEST(SafetensorsChecksums, StoredInTheMetadataAndHiddenOnLoad) {
  const std::string path = (fs::path(::testing::TempDir()) / "checksummed.safetensors").string();
  save_safetensors(path, three_tensors(), {{"step", "7"}});
  const std::string bytes = read_bytes(path);
  EXPECT_NE(bytes.find("\"tensor_sha256\""), std::string::npos);  // in the file, for Python too
  // The digest of a tensor is the SHA-256 of its little-endian bytes: here int64 7.
  EXPECT_NE(bytes.find("\\\"optimizer.step\\\":\\\"aae89fc0f03e2959ae4d701a80cc3915918c950b159f6abb6c92c1433b1a8534\\\""),
            std::string::npos);
  SafetensorsContents loaded = load_safetensors(path);
  EXPECT_EQ(loaded.metadata, (SafetensorsMetadata{{"step", "7"}}));
  EXPECT_TRUE(test::throws_error([&] { save_safetensors(path, three_tensors(), {{"tensor_sha256", "{}"}}); },
                                 "reserved"));
}

// Each bit of the data buffer, flipped in turn, makes the load fail naming the tensor it belongs to.
TEST(SafetensorsChecksums, EveryFlippedBitNamesItsTensor) {
  const std::string path = (fs::path(::testing::TempDir()) / "bitrot.safetensors").string();
  StateDict tensors = three_tensors();
  save_safetensors(path, tensors);
  const std::string good = read_bytes(path);
  uint64_t header = 0;
  std::memcpy(&header, good.data(), 8);
  size_t begin = 8 + header, checked = 0;
  for (const auto& [name, t] : tensors) {
    const size_t end = begin + static_cast<size_t>(t.nbytes());
    for (size_t byte = begin; byte < end; ++byte)
      for (int bit = 0; bit < 8; ++bit) {
        std::string bad = good;
        bad[byte] = static_cast<char>(bad[byte] ^ (1 << bit));
        EXPECT_TRUE(test::throws_error([&] { parse_safetensors(bad, "f"); }, "tensor '" + name + "'",
                                       "does not match its SHA-256"))
            << "byte " << byte << " bit " << bit;
        ++checked;
      }
    begin = end;
  }
  EXPECT_EQ(begin, good.size());
  EXPECT_EQ(checked, 8u * (80 + 32 + 8));
  // From disk too (the file reader has its own code path).
  std::string bad = good;
  bad[good.size() - 1] ^= 0x10;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bad;
  EXPECT_TRUE(test::throws_error([&] { load_safetensors(path); }, path, "tensor 'optimizer.step'"));
}

TEST(SafetensorsChecksums, AChangedChecksumListIsAnError) {
  StateDict tensors = three_tensors();
  SafetensorsMetadata metadata{{"tensor_sha256", "not json"}};
  EXPECT_TRUE(test::throws_error([&] { verify_tensor_checksums(tensors, metadata, "f"); }, "not a JSON object"));
  metadata = {{"tensor_sha256", tensor_checksums_json(tensors)}};
  StateDict fewer;
  fewer.set("norm.weight", tensors.at("norm.weight"));
  EXPECT_TRUE(test::throws_error([&] { verify_tensor_checksums(fewer, metadata, "f"); },
                                 "lists tensor 'embedding.weight', which the file does not hold"));
  StateDict more = tensors;
  more.set("extra", ones({1}));
  EXPECT_TRUE(test::throws_error([&] { verify_tensor_checksums(more, metadata, "f"); }, "tensor 'extra' has no checksum"));
  verify_tensor_checksums(tensors, metadata, "f");  // the right list passes and is removed
  EXPECT_TRUE(metadata.empty());
}

}  // namespace
}  // namespace mg::nn
