#pragma once
// Checkpoints in the public safetensors format (https://github.com/huggingface/safetensors), so
// a Python user can open them with `safetensors.numpy.load_file` or `safetensors.torch.load_file`:
//
//   8 bytes      N, the header length, unsigned little-endian
//   N bytes      JSON: {"<name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]},
//                       ..., "__metadata__": {"<key>": "<string value>"}}   (metadata optional)
//   the rest     the data buffer: each tensor's bytes, row-major, little-endian, at
//                [begin, end) relative to the buffer's start; the tensors cover it exactly
//
// Supported dtypes: F32, F64, I64 (our float32, float64, int64); F16 and BF16, in which pretrained
// models are published, are read and widened to float32 (exactly: every such value is a float).
#include <map>
#include <string>
#include <string_view>

#include "nn/state_dict.h"

namespace mg::nn {

using SafetensorsMetadata = std::map<std::string, std::string>;

struct SafetensorsContents {
  StateDict tensors;  // in the order of their data in the file; contiguous CPU tensors
  SafetensorsMetadata metadata;
};

// Writes `tensors` (any device, any strides; float32, float64 or int64) and `metadata` to `path`,
// with each tensor's SHA-256 in the metadata ("tensor_sha256", a reserved key), atomically: the bytes go to "<path>.tmp.<pid>" in the same directory, are flushed and fsync'ed,
// and only then renamed over `path`. On any failure the temporary file is removed, `path` is left
// as it was, and mg::Error says what went wrong.
void save_safetensors(const std::string& path, const StateDict& tensors, const SafetensorsMetadata& metadata = {});

// Reads and validates a whole file. Every malformed input (truncated, header length too large,
// bad JSON, unknown dtype, offsets outside the buffer or overlapping or leaving gaps, sizes that
// do not match the shape, a tensor whose bytes do not match its stored checksum) throws mg::Error
// naming the file and the problem. The returned metadata leaves out the checksums.
SafetensorsContents load_safetensors(const std::string& path);

// The same from bytes in memory; `source` names them in error messages.
SafetensorsContents parse_safetensors(std::string_view bytes, const std::string& source = "<memory>");

}  // namespace mg::nn
