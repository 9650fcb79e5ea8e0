// safetensors files: the layout is in safetensors.h, the header's checks in safetensors_header.cpp.
// Saving goes through AtomicFile (nn/atomic_file.h): a temporary file beside the target, renamed
// over it only after every byte is on disk, so a crash or a full disk never destroys the last
// good checkpoint. Each tensor's SHA-256 goes into the metadata and is checked on every load
// (nn/safetensors_checksums.h), so bit rot in the data is an error, not silently wrong weights.
#include "nn/safetensors.h"

#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "nn/atomic_file.h"
#include "nn/safetensors_checksums.h"
#include "nn/safetensors_header.h"
#include "ops/view.h"
#include "tensor/factory.h"

namespace mg::nn {

static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

[[noreturn]] void fail(const std::string& source, const std::string& problem) {
  throw Error(str("safetensors: ", source, ": ", problem));
}

std::string errno_text() { return std::strerror(errno); }

// Header length (8 bytes, little-endian), checked against the file size.
uint64_t header_length(const unsigned char* first8, uint64_t file_bytes, const std::string& source) {
  uint64_t n = 0;
  std::memcpy(&n, first8, 8);
  if (n > kSafetensorsMaxHeaderBytes)
    fail(source, str("the header length ", n, " is larger than the limit of ", kSafetensorsMaxHeaderBytes, " bytes"));
  if (n > file_bytes - 8)
    fail(source, str("the header length ", n, " runs past the end of the ", file_bytes, "-byte file"));
  return n;
}

// IEEE half -> float, exactly (every half is a float): subnormals renormalized, Inf kept, NaN quiet.
float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF, bits = 0;
  if (exponent == 0x1F) {  // Inf, or NaN made quiet (as the CPU's conversion instruction does)
    bits = sign | 0x7F800000u | mantissa << 13 | (mantissa != 0 ? 0x00400000u : 0u);
  } else if (exponent != 0) {
    bits = sign | (exponent + 112) << 23 | mantissa << 13;
  } else if (mantissa != 0) {  // subnormal: shift the leading 1 into place
    exponent = 113;
    while ((mantissa & 0x400) == 0) mantissa <<= 1, --exponent;
    bits = sign | exponent << 23 | (mantissa & 0x3FF) << 13;
  } else {
    bits = sign;
  }
  return std::bit_cast<float>(bits);
}

// A tensor's elements from their stored bytes: copied, or widened from F16/BF16 to float32.
void decode_elements(Tensor& t, const char* bytes, const SafetensorsEntry& e) {
  const uint64_t nbytes = e.end - e.begin;
  if (e.stored != StoredDType::F16 && e.stored != StoredDType::BF16) {
    if (nbytes > 0) std::memcpy(t.raw_data(), bytes, nbytes);
    return;
  }
  float* out = t.data<float>();
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i) {
    uint16_t v;
    std::memcpy(&v, bytes + 2 * i, 2);
    out[i] = e.stored == StoredDType::BF16 ? std::bit_cast<float>(static_cast<uint32_t>(v) << 16) : half_to_float(v);
  }
}

}  // namespace

void save_safetensors(const std::string& path, const StateDict& tensors, const SafetensorsMetadata& metadata) {
  // Everything that can be checked is checked before the temporary file exists.
  MG_CHECK(!metadata.contains(kTensorChecksumsKey), "safetensors: ", path, ": the metadata key '", kTensorChecksumsKey,
           "' is reserved for the tensors' checksums");
  std::vector<SafetensorsEntry> entries;
  std::vector<Tensor> data;
  StateDict contiguous_tensors;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    MG_CHECK(name != "__metadata__", "safetensors: ", path, ": '__metadata__' is reserved and cannot name a tensor");
    MG_CHECK(t.defined(), "safetensors: ", path, ": tensor '", name, "' is undefined");
    Tensor cpu = contiguous(to_device(t.detach(), Device::cpu()));
    const uint64_t nbytes = static_cast<uint64_t>(cpu.nbytes());
    entries.push_back({name, cpu.dtype(), cpu.shape(), offset, offset + nbytes});
    data.push_back(cpu);
    contiguous_tensors.set(name, cpu);
    offset += nbytes;
  }
  SafetensorsMetadata with_checksums = metadata;
  with_checksums[kTensorChecksumsKey] = tensor_checksums_json(contiguous_tensors);
  const std::string header = make_safetensors_header(entries, with_checksums);

  AtomicFile file(path);
  unsigned char length[8];
  const uint64_t n = header.size();
  std::memcpy(length, &n, 8);
  file.write(length, 8);
  file.write(header);
  for (const Tensor& t : data) file.write(t.raw_data(), static_cast<size_t>(t.nbytes()));
  file.commit();
}

SafetensorsContents parse_safetensors(std::string_view bytes, const std::string& source) {
  if (bytes.size() < 8)
    fail(source, str("only ", bytes.size(), " bytes; a safetensors file starts with an 8-byte header length"));
  const uint64_t n = header_length(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), source);
  SafetensorsHeader header = parse_safetensors_header(bytes.substr(8, n), bytes.size() - 8 - n, source);
  SafetensorsContents out;
  out.metadata = std::move(header.metadata);
  TensorChecksums checksums(out.metadata, source);
  const char* buffer = bytes.data() + 8 + n;
  for (const SafetensorsEntry& e : header.entries) {
    checksums.verify(e.name, buffer + e.begin, e.end - e.begin);
    Tensor t = empty(e.shape, {.dtype = e.dtype});
    decode_elements(t, buffer + e.begin, e);
    out.tensors.set(e.name, t);
  }
  checksums.verify_none_missing();
  return out;
}

SafetensorsContents load_safetensors(const std::string& path) {
  std::error_code ec;
  const std::filesystem::file_status status = std::filesystem::status(path, ec);
  if (status.type() == std::filesystem::file_type::not_found) fail(path, "the file does not exist");
  if (ec) fail(path, "cannot access the file: " + ec.message());
  if (status.type() != std::filesystem::file_type::regular) fail(path, "not a regular file");
  const uint64_t file_bytes = std::filesystem::file_size(path, ec);
  if (ec) fail(path, "cannot read the file size: " + ec.message());
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) fail(path, str("cannot open for reading: ", errno_text()));
  auto read = [&](void* dst, uint64_t count) {
    if (count > 0 && std::fread(dst, 1, count, file.get()) != count)
      fail(path, "the file ended early or could not be read (was it changed while loading?)");
  };

  if (file_bytes < 8)
    fail(path, str("only ", file_bytes, " bytes; a safetensors file starts with an 8-byte header length"));
  unsigned char first8[8];
  read(first8, 8);
  const uint64_t n = header_length(first8, file_bytes, path);
  std::string text(n, '\0');
  read(text.data(), n);
  SafetensorsHeader header = parse_safetensors_header(text, file_bytes - 8 - n, path);

  // The entries tile the buffer in order, so reading them one after another reads it all.
  SafetensorsContents out;
  out.metadata = std::move(header.metadata);
  TensorChecksums checksums(out.metadata, path);
  std::vector<char> stored;  // F16/BF16 bytes on their way to float32
  for (const SafetensorsEntry& e : header.entries) {
    Tensor t = empty(e.shape, {.dtype = e.dtype});
    if (e.stored == StoredDType::F16 || e.stored == StoredDType::BF16) {
      stored.resize(e.end - e.begin);
      read(stored.data(), e.end - e.begin);
      checksums.verify(e.name, stored.data(), stored.size());
      decode_elements(t, stored.data(), e);
    } else {
      read(t.raw_data(), e.end - e.begin);
      checksums.verify(e.name, t.raw_data(), e.end - e.begin);
    }
    out.tensors.set(e.name, t);
  }
  checksums.verify_none_missing();
  return out;
}

}  // namespace mg::nn
