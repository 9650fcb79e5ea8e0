// libFuzzer harness: the safetensors reader (nn/safetensors.h) on arbitrary bytes. Bad input must
// end in mg::Error; anything else (a crash, a sanitizer report, another exception, a leak, a
// timeout, an allocation beyond the limit) is a finding. A file it accepts must hold tensors whose
// sizes match the data they were read from.
#include <cstdint>
#include <string_view>

#include "nn/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    mg::nn::SafetensorsContents contents = mg::nn::parse_safetensors(bytes, "fuzz");
    uint64_t total = 0;
    for (const auto& [name, t] : contents.tensors) total += static_cast<uint64_t>(t.nbytes());
    if (total > size) __builtin_trap();  // more tensor bytes than the input holds
  } catch (const mg::Error&) {
  }
  return 0;
}
