// Bit rot: every flipped bit in a saved file's data buffer is caught by the tensors' SHA-256
// checksums (nn/safetensors_checksums.h), with an error naming the tensor it hit.
#include <cstring>
#include <filesystem>
#include <fstream>

#include "nn/safetensors.h"
#include "nn/safetensors_checksums.h"
#include "nn/sha256.h"
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
  EXPECT_TRUE(test::throws_error([&] { TensorChecksums(metadata, "f"); }, "not a JSON object"));
  const std::string listed = tensor_checksums_json(tensors);
  auto check = [&](const StateDict& held) {  // as a load runs it
    SafetensorsMetadata m{{"tensor_sha256", listed}, {"other", "kept"}};
    TensorChecksums checksums(m, "f");
    EXPECT_EQ(m.size(), 1u);  // the key is taken out, the rest stays
    for (const auto& [name, t] : held) checksums.verify(name, t.raw_data(), static_cast<size_t>(t.nbytes()));
    checksums.verify_none_missing();
  };
  StateDict fewer;
  fewer.set("norm.weight", tensors.at("norm.weight"));
  EXPECT_TRUE(test::throws_error([&] { check(fewer); }, "lists tensor 'embedding.weight', which the file does not hold"));
  StateDict more = tensors;
  more.set("extra", ones({1}));
  EXPECT_TRUE(test::throws_error([&] { check(more); }, "tensor 'extra' has no checksum"));
  check(tensors);  // the right list passes
}

// The digest covers the bytes as the file stores them: an F16 or BF16 tensor (which loads widened
// to float32) with a checksum loads, and a flipped bit in it is named, from disk and from memory.
TEST(SafetensorsChecksums, HalfPrecisionTensorsAreCheckedAsStored) {
  for (const char* dtype : {"F16", "BF16"}) {
    const std::string data("\x00\x3c\x00\xc0\x55\x35", 6);  // F16: 1, -2, 0.333; BF16: tiny values, fine too
    const std::string digests = str(R"({\"h\":\")", sha256_hex(data.data(), data.size()), R"(\"})");
    std::string header = str(R"({"h":{"dtype":")", dtype, R"(","shape":[3],"data_offsets":[0,6]},)",
                             R"("__metadata__":{"tensor_sha256":")", digests, R"("}})");
    std::string file(8, '\0');
    const uint64_t n = header.size();
    std::memcpy(file.data(), &n, 8);
    file += header + data;
    const std::string path = (fs::path(::testing::TempDir()) / "half_checksummed.safetensors").string();
    std::ofstream(path, std::ios::binary | std::ios::trunc) << file;
    SafetensorsContents loaded = load_safetensors(path);
    EXPECT_EQ(loaded.tensors.at("h").dtype(), DType::Float32) << dtype;
    EXPECT_TRUE(loaded.metadata.empty()) << dtype;
    EXPECT_EQ(parse_safetensors(file, "memory").tensors.at("h").numel(), 3) << dtype;
    file[file.size() - 3] ^= 0x04;
    std::ofstream(path, std::ios::binary | std::ios::trunc) << file;
    EXPECT_TRUE(test::throws_error([&] { load_safetensors(path); }, "tensor 'h' does not match")) << dtype;
    EXPECT_TRUE(test::throws_error([&] { parse_safetensors(file, "memory"); }, "tensor 'h' does not match")) << dtype;
  }
}

}  // namespace
}  // namespace mg::nn
