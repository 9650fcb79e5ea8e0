// libFuzzer harness: MambaConfig's JSON reader (models/mamba/config.h), the format of --config
// files and of the config in every checkpoint. Bad input must end in mg::Error; a config it
// accepts must be valid and survive a round trip through to_json().
#include <cstdint>
#include <string>

#include "models/mamba/config.h"
#include "tensor/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    mg::mamba::MambaConfig config = mg::mamba::MambaConfig::from_json(text);
    config.validate();
    const std::string json = config.to_json();
    if (mg::mamba::MambaConfig::from_json(json).to_json() != json) __builtin_trap();  // not a round trip
  } catch (const mg::Error&) {
  }
  return 0;
}
