#pragma once
// Bit rot: a flipped bit in a safetensors data buffer passes every structural check of the
// format, so a save also stores the SHA-256 of each tensor's bytes in the file's __metadata__,
// under "tensor_sha256" (a JSON object: tensor name -> 64 hex digits), and a load verifies them.
// The file stays plain safetensors: Python opens it, and can check a tensor with
//   json.loads(metadata["tensor_sha256"])[name] == hashlib.sha256(array.tobytes()).hexdigest()
// Files without the key (written by other tools) load unverified.
#include "nn/safetensors.h"

namespace mg::nn {

constexpr const char* kTensorChecksumsKey = "tensor_sha256";

// The "tensor_sha256" value for these (contiguous) tensors.
std::string tensor_checksums_json(const StateDict& tensors);

// If `metadata` holds "tensor_sha256": checks that it lists exactly these tensors and that each
// one's bytes have the listed digest, then removes the key (callers see only their own metadata).
// Throws mg::Error naming `source` and the first tensor that does not match.
void verify_tensor_checksums(const StateDict& tensors, SafetensorsMetadata& metadata, const std::string& source);

}  // namespace mg::nn
