// The safetensors header: every check the reference implementation makes on a load (header keys
// and types, dtype names, offsets that tile the buffer with no gap and no overlap, sizes that match
// the shapes), each failing with an mg::Error that names the file, the tensor and the problem.
#include "nn/safetensors_header.h"

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

namespace mg::nn {

namespace {

using json = nlohmann::ordered_json;

struct DTypeName {
  const char* name;
  DType dtype;
  StoredDType stored;
};
constexpr DTypeName kSupported[] = {{"F32", DType::Float32, StoredDType::F32},
                                    {"F64", DType::Float64, StoredDType::F64},
                                    {"I64", DType::Int64, StoredDType::I64},
                                    {"F16", DType::Float32, StoredDType::F16},
                                    {"BF16", DType::Float32, StoredDType::BF16}};
// Valid in the format, but not (yet) tensors of ours: named in a clearer error than "unknown".
constexpr const char* kUnsupported[] = {"BOOL",    "U8",      "I8",      "U16",     "I16",    "U32",
                                        "I32",     "U64",     "F8_E5M2", "F8_E4M3", "F8_E8M0", "F4",
                                        "F6_E2M3", "F6_E3M2", "C64"};

const char* dtype_code(StoredDType stored) {
  for (const auto& d : kSupported)
    if (d.stored == stored) return d.name;
  throw InternalError("safetensors: no code for dtype");
}
const char* dtype_code(DType dtype) {  // how we write a tensor of ours
  for (const auto& d : kSupported)
    if (d.dtype == dtype) return d.name;
  throw InternalError("safetensors: no code for dtype");
}

[[noreturn]] void fail(const std::string& source, const std::string& problem) {
  throw Error(str("safetensors: ", source, ": ", problem));
}

uint64_t non_negative_integer(const json& j, const std::string& source, const std::string& what) {
  if (!j.is_number_unsigned()) fail(source, str(what, " must be a non-negative integer, got ", j.dump()));
  return j.get<uint64_t>();
}

const DTypeName& parse_dtype(const json& j, const std::string& source, const std::string& name) {
  if (!j.is_string()) fail(source, str("tensor '", name, "': dtype must be a string, got ", j.dump()));
  const std::string code = j.get<std::string>();
  for (const auto& d : kSupported)
    if (code == d.name) return d;
  for (const char* other : kUnsupported)
    if (code == other)
      fail(source, str("tensor '", name, "' has dtype ", code,
                       ", which mambagrad does not support (F32, F64, I64, and F16 and BF16 read as float32)"));
  fail(source, str("tensor '", name, "' has unknown dtype '", code, "'"));
}

// The sizes of a shape; numel gets their product, `overflow` whether it passed 2^64. Sizes must
// also keep every stride within int64, even when another size is 0 (so numel is 0).
Shape parse_shape(const json& shape, const std::string& source, const std::string& where, uint64_t& numel,
                  bool& overflow) {
  if (!shape.is_array()) fail(source, str(where, ": shape must be an array, got ", shape.dump()));
  Shape out;
  numel = 1;
  int64_t nonzero_product = 1;
  for (const json& d : shape) {
    uint64_t size = non_negative_integer(d, source, str(where, ": every dimension of the shape"));
    if (size > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail(source, str(where, ": shape dimension ", size, " is too large"));
    overflow |= __builtin_mul_overflow(numel, size, &numel);
    if (size > 0 && __builtin_mul_overflow(nonzero_product, static_cast<int64_t>(size), &nonzero_product))
      fail(source, str(where, ": shape ", shape.dump(), " is too large"));
    out.push_back(static_cast<int64_t>(size));
  }
  return out;
}

SafetensorsEntry parse_entry(const std::string& name, const json& j, uint64_t buffer_bytes, const std::string& source) {
  const std::string where = str("tensor '", name, "'");
  if (!j.is_object()) fail(source, str(where, ": expected an object with dtype, shape and data_offsets"));
  for (const auto& [key, value] : j.items())
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      fail(source, str(where, ": unexpected field '", key, "'"));
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!j.contains(key)) fail(source, str(where, ": missing field '", key, "'"));

  SafetensorsEntry e;
  e.name = name;
  const DTypeName& dtype = parse_dtype(j["dtype"], source, name);
  e.dtype = dtype.dtype;
  e.stored = dtype.stored;
  bool overflow = false;
  uint64_t numel = 0;
  e.shape = parse_shape(j["shape"], source, where, numel, overflow);
  const json& offsets = j["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2)
    fail(source, str(where, ": data_offsets must be [begin, end], got ", offsets.dump()));
  e.begin = non_negative_integer(offsets[0], source, str(where, ": data_offsets[0]"));
  e.end = non_negative_integer(offsets[1], source, str(where, ": data_offsets[1]"));
  if (e.begin > e.end) fail(source, str(where, ": data_offsets [", e.begin, ", ", e.end, "] end before they begin"));
  if (e.end > buffer_bytes)
    fail(source, str(where, ": data_offsets [", e.begin, ", ", e.end, "] go past the end of the ", buffer_bytes,
                     "-byte data buffer"));
  uint64_t nbytes = 0;
  overflow |= __builtin_mul_overflow(numel, static_cast<uint64_t>(stored_dtype_size(e.stored)), &nbytes);
  if (overflow || nbytes != e.end - e.begin)
    fail(source, str(where, ": shape ", e.shape, " of ", dtype_code(e.stored), " needs ",
                     overflow ? std::string("more than 2^64") : std::to_string(nbytes), " bytes but data_offsets [",
                     e.begin, ", ", e.end, "] hold ", e.end - e.begin));
  return e;
}

SafetensorsMetadata parse_metadata(const json& j, const std::string& source) {
  if (!j.is_object()) fail(source, "__metadata__ must be an object of strings");
  SafetensorsMetadata out;
  for (const auto& [key, value] : j.items()) {
    if (!value.is_string()) fail(source, str("__metadata__ value of '", key, "' must be a string, got ", value.dump()));
    out[key] = value.get<std::string>();
  }
  return out;
}

// Parses JSON, refusing duplicate keys (nlohmann would keep the last silently) and nesting
// deeper than any valid header needs.
json parse_json(std::string_view text, const std::string& source) {
  std::vector<std::set<std::string>> open_objects;
  std::string problem;
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) {
    if (!problem.empty()) return false;
    if (depth > 4) problem = "the header nests deeper than a safetensors header can";
    if (event == json::parse_event_t::object_start) open_objects.emplace_back();
    if (event == json::parse_event_t::object_end && !open_objects.empty()) open_objects.pop_back();
    if (event == json::parse_event_t::key && !open_objects.empty() &&
        !open_objects.back().insert(parsed.get<std::string>()).second)
      problem = str("the header has the key '", parsed.get<std::string>(), "' twice");
    return problem.empty();
  };
  json root;
  try {
    root = json::parse(text.begin(), text.end(), callback);
  } catch (const json::exception& e) {
    fail(source, str("the header is not valid JSON (", e.what(), ")"));
  }
  if (!problem.empty()) fail(source, problem);
  return root;
}

}  // namespace

int64_t stored_dtype_size(StoredDType stored) {
  switch (stored) {
    case StoredDType::F16:
    case StoredDType::BF16: return 2;
    case StoredDType::F32: return 4;
    default: return 8;
  }
}

SafetensorsHeader parse_safetensors_header(std::string_view text, uint64_t buffer_bytes, const std::string& source) {
  if (text.empty() || text.front() != '{') fail(source, "the header does not start with '{'");
  const json root = parse_json(text, source);
  if (!root.is_object()) fail(source, "the header is not a JSON object");

  SafetensorsHeader header;
  for (const auto& [key, value] : root.items()) {
    if (key == "__metadata__")
      header.metadata = parse_metadata(value, source);
    else
      header.entries.push_back(parse_entry(key, value, buffer_bytes, source));
  }
  std::sort(header.entries.begin(), header.entries.end(),
            [](const auto& a, const auto& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  uint64_t covered = 0;  // the tensors so far tile [0, covered)
  for (const SafetensorsEntry& e : header.entries) {
    if (e.begin < covered)
      fail(source, str("tensor '", e.name, "' at [", e.begin, ", ", e.end,
                       ") overlaps the tensor before it, which ends at ", covered));
    if (e.begin > covered)
      fail(source, str("the data buffer has a gap: bytes [", covered, ", ", e.begin, ") belong to no tensor (before '",
                       e.name, "')"));
    covered = e.end;
  }
  if (covered != buffer_bytes)
    fail(source, str("the tensors cover ", covered, " bytes but the data buffer has ", buffer_bytes,
                     " (the file is truncated or has trailing bytes)"));
  return header;
}

std::string make_safetensors_header(const std::vector<SafetensorsEntry>& entries, const SafetensorsMetadata& metadata) {
  json root = json::object();
  if (!metadata.empty()) {
    json meta = json::object();
    for (const auto& [key, value] : metadata) meta[key] = value;
    root["__metadata__"] = meta;
  }
  for (const SafetensorsEntry& e : entries) {
    json shape = json::array();
    for (int64_t d : e.shape) shape.push_back(d);
    root[e.name] = {{"dtype", dtype_code(e.dtype)}, {"shape", shape}, {"data_offsets", {e.begin, e.end}}};
  }
  std::string text;
  try {
    text = root.dump();
  } catch (const json::exception& e) {
    throw Error(str("safetensors: tensor names and metadata must be valid UTF-8 (", e.what(), ")"));
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

}  // namespace mg::nn
