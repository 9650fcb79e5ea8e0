#include "nn/safetensors_checksums.h"

#include <nlohmann/json.hpp>

#include "nn/sha256.h"

namespace mg::nn {

std::string tensor_checksums_json(const StateDict& tensors) {
  nlohmann::ordered_json digests = nlohmann::ordered_json::object();
  for (const auto& [name, t] : tensors) digests[name] = sha256_hex(t.raw_data(), static_cast<size_t>(t.nbytes()));
  try {
    return digests.dump();
  } catch (const nlohmann::json::exception& e) {
    throw Error(str("safetensors: tensor names and metadata must be valid UTF-8 (", e.what(), ")"));
  }
}

TensorChecksums::TensorChecksums(SafetensorsMetadata& metadata, std::string source) : source_(std::move(source)) {
  auto it = metadata.find(kTensorChecksumsKey);
  if (it == metadata.end()) return;
  const nlohmann::json digests = nlohmann::json::parse(it->second, nullptr, false);
  MG_CHECK(digests.is_object(), "safetensors: ", source_, ": __metadata__.", kTensorChecksumsKey,
           " is not a JSON object");
  for (const auto& [name, digest] : digests.items())
    digests_[name] = digest.is_string() ? digest.get<std::string>() : std::string();  // "" matches nothing
  present_ = true;
  metadata.erase(it);
}

void TensorChecksums::verify(const std::string& name, const void* stored, size_t bytes) {
  if (!present_) return;
  auto listed = digests_.find(name);
  MG_CHECK(listed != digests_.end() && !listed->second.empty(), "safetensors: ", source_, ": tensor '", name,
           "' has no checksum in __metadata__.", kTensorChecksumsKey, " (the file was changed after it was written)");
  MG_CHECK(sha256_hex(stored, bytes) == listed->second, "safetensors: ", source_, ": tensor '", name,
           "' does not match its SHA-256 checksum: its bytes changed after the file was written (a flipped bit on "
           "disk or a damaged copy)");
  verified_.insert(name);
}

void TensorChecksums::verify_none_missing() const {
  if (!present_) return;
  for (const auto& [name, digest] : digests_)
    MG_CHECK(verified_.contains(name), "safetensors: ", source_, ": __metadata__.", kTensorChecksumsKey,
             " lists tensor '", name, "', which the file does not hold (the file was changed after it was written)");
}

}  // namespace mg::nn
