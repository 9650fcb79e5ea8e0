#pragma once
// Bit rot: a flipped bit in a safetensors data buffer passes every structural check of the
// format, so a save also stores the SHA-256 of each tensor's bytes, as stored in the file, in its
// __metadata__ under "tensor_sha256" (a JSON object: tensor name -> 64 hex digits), and a load
// verifies them. The file stays plain safetensors: Python opens it, and can check a tensor with
//   json.loads(metadata["tensor_sha256"])[name] == hashlib.sha256(array.tobytes()).hexdigest()
// Files without the key (written by other tools, e.g. Hugging Face's, in any dtype) load unverified.
#include <map>
#include <set>

#include "nn/safetensors.h"

namespace mg::nn {

constexpr const char* kTensorChecksumsKey = "tensor_sha256";

// The "tensor_sha256" value for these (contiguous) tensors, digests of their bytes.
std::string tensor_checksums_json(const StateDict& tensors);

// The digests a file lists, checked tensor by tensor while it loads.
class TensorChecksums {
 public:
  // Takes "tensor_sha256" out of `metadata` (callers see only their own metadata). Throws
  // mg::Error naming `source` when it is malformed.
  TensorChecksums(SafetensorsMetadata& metadata, std::string source);
  // One tensor's bytes as the file stores them (F16/BF16 before widening to float32): throws
  // mg::Error naming `source` and the tensor when they do not match its digest or it has none.
  // Nothing to check in a file without checksums.
  void verify(const std::string& name, const void* stored, size_t bytes);
  // After every tensor: throws when the list names a tensor the file does not hold.
  void verify_none_missing() const;

 private:
  std::string source_;
  bool present_ = false;
  std::map<std::string, std::string> digests_;
  std::set<std::string> verified_;
};

}  // namespace mg::nn
