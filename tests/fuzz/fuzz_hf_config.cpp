// libFuzzer harness: a pretrained model's config.json (models/mamba/pretrained.h), transformers'
// keys or the original state-spaces ones. Bad input must end in mg::Error; a config it accepts
// must be a valid MambaConfig.
#include <cstdint>
#include <string>

#include "models/mamba/pretrained.h"
#include "tensor/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    mg::mamba::PretrainedConfig parsed = mg::mamba::parse_pretrained_config(text, "fuzz");
    parsed.config.validate();
    (void)parsed.config.num_parameters();
  } catch (const mg::Error&) {
  }
  return 0;
}
