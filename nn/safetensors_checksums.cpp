#include "nn/safetensors_checksums.h"

#include <nlohmann/json.hpp>

#include "nn/sha256.h"

namespace mg::nn {

namespace {
std::string digest_of(const Tensor& t) { return sha256_hex(t.raw_data(), static_cast<size_t>(t.nbytes())); }
}  // namespace

std::string tensor_checksums_json(const StateDict& tensors) {
  nlohmann::ordered_json digests = nlohmann::ordered_json::object();
  for (const auto& [name, t] : tensors) digests[name] = digest_of(t);
  try {
    return digests.dump();
  } catch (const nlohmann::json::exception& e) {
    throw Error(str("safetensors: tensor names and metadata must be valid UTF-8 (", e.what(), ")"));
  }
}

void verify_tensor_checksums(const StateDict& tensors, SafetensorsMetadata& metadata, const std::string& source) {
  auto it = metadata.find(kTensorChecksumsKey);
  if (it == metadata.end()) return;
  auto fail = [&](const std::string& problem) { throw Error(str("safetensors: ", source, ": ", problem)); };
  const nlohmann::json digests = nlohmann::json::parse(it->second, nullptr, false);
  if (!digests.is_object()) fail(str("__metadata__.", kTensorChecksumsKey, " is not a JSON object"));
  for (const auto& [name, t] : tensors) {
    auto listed = digests.find(name);
    if (listed == digests.end() || !listed->is_string())
      fail(str("tensor '", name, "' has no checksum in __metadata__.", kTensorChecksumsKey,
               " (the file was changed after it was written)"));
    if (digest_of(t) != listed->get<std::string>())
      fail(str("tensor '", name, "' does not match its SHA-256 checksum: its bytes changed after the file was ",
               "written (a flipped bit on disk or a damaged copy)"));
  }
  for (const auto& [name, digest] : digests.items())
    if (!tensors.contains(name))
      fail(str("__metadata__.", kTensorChecksumsKey, " lists tensor '", name,
               "', which the file does not hold (the file was changed after it was written)"));
  metadata.erase(it);
}

}  // namespace mg::nn
