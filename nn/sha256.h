#pragma once
// SHA-256 (FIPS 180-4): the checksum of each tensor's bytes in a safetensors file's metadata
// (nn/safetensors_checksums.h), and the check of a downloaded corpus. A plain portable loop:
// about 0.2-0.4 GB/s, a few ms for a 6 MB checkpoint. Python's hashlib.sha256 gives the same
// digests, so a Python user can verify a file too.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace mg::nn {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t n);
  void update(std::string_view bytes) { update(bytes.data(), bytes.size()); }
  // The digest as 64 lowercase hex digits; the object is spent afterwards.
  std::string hex_digest();

 private:
  void compress(const unsigned char* block);  // one 64-byte block
  std::array<uint32_t, 8> state_;
  std::array<unsigned char, 64> pending_{};  // bytes of an incomplete block
  size_t pending_bytes_ = 0;
  uint64_t total_bytes_ = 0;
};

std::string sha256_hex(const void* data, size_t n);
inline std::string sha256_hex(std::string_view bytes) { return sha256_hex(bytes.data(), bytes.size()); }

}  // namespace mg::nn
