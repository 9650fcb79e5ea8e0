#pragma once
// The JSON header of a safetensors file: building it for a save, and parsing and validating it
// on a load (used by nn/safetensors.cpp; see there for the file layout).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "nn/safetensors.h"
#include "tensor/dtype.h"
#include "tensor/shape.h"

namespace mg::nn {

constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;  // as the reference implementation

// How a tensor's elements are stored in the file. F16 and BF16 (how pretrained models are
// published) have no DType of ours: they are widened to float32 on load, exactly.
enum class StoredDType : uint8_t { F32, F64, I64, F16, BF16 };
int64_t stored_dtype_size(StoredDType stored);

struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::Float32;  // the tensor's dtype (once loaded)
  Shape shape;
  uint64_t begin = 0, end = 0;  // byte offsets into the data buffer
  StoredDType stored = StoredDType::F32;  // on load: how the file stores it (a save writes `dtype`)
};

struct SafetensorsHeader {
  std::vector<SafetensorsEntry> entries;  // sorted by offset; they tile [0, buffer_bytes) exactly
  SafetensorsMetadata metadata;
};

// Parses and validates `json` for a data buffer of `buffer_bytes`. Throws mg::Error starting
// with "safetensors: <source>: " on any problem.
SafetensorsHeader parse_safetensors_header(std::string_view json, uint64_t buffer_bytes, const std::string& source);

// The header JSON for entries in this order (metadata first when not empty), padded with spaces
// to a multiple of 8 bytes so that the data buffer starts aligned (as Python's writer does).
std::string make_safetensors_header(const std::vector<SafetensorsEntry>& entries, const SafetensorsMetadata& metadata);

}  // namespace mg::nn
