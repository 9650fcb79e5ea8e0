// libFuzzer harness: the character tokenizer's stored vocabulary (apps/common/char_tokenizer.h),
// as a checkpoint's metadata gives it, and a text encoded with it. Bad input must end in
// mg::Error; an accepted vocabulary must encode to 0..n-1 and decode back.
#include <cstdint>
#include <numeric>
#include <string>

#include "apps/common/char_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  // The first half is the stored vocabulary, the second a text to encode with it.
  const std::string vocabulary = bytes.substr(0, size / 2), text = bytes.substr(size / 2);
  try {
    mg::apps::CharTokenizer t = mg::apps::CharTokenizer::from_vocabulary(vocabulary);
    std::vector<int64_t> expected(vocabulary.size());
    std::iota(expected.begin(), expected.end(), 0);
    if (t.encode(vocabulary) != expected || t.decode(expected) != vocabulary) __builtin_trap();
    if (t.decode(t.encode(text)) != text) __builtin_trap();
  } catch (const mg::Error&) {
  }
  try {
    mg::apps::CharTokenizer t = mg::apps::CharTokenizer::from_text(bytes);
    if (t.decode(t.encode(bytes)) != bytes) __builtin_trap();
  } catch (const mg::Error&) {
  }
  return 0;
}
