#pragma once
// The Unicode properties the byte-level BPE tokenizer needs, from the generated tables
// (text/unicode_tables.cpp; scripts/gen_unicode_tables.py says where they come from):
//   - the pre-tokenizer's character classes: \p{L}, \p{N}, \s (White_Space), everything else;
//   - NFC normalization (UAX #15: canonical decomposition, canonical ordering, composition),
//     the normalizer of the GPT-NeoX tokenizer.
#include <string>
#include <string_view>

namespace mg::text {

const char* unicode_version();  // of the tables, e.g. "16.0.0"

enum class CharClass : unsigned char { Letter, Number, Space, Other };
CharClass char_class(char32_t code_point);
bool is_white_space(char32_t code_point);

int canonical_combining_class(char32_t code_point);
// NFC of valid UTF-8 text. Text with no code point that NFC can affect (all of ASCII, most of
// any script's precomposed text) is returned as it is without further work.
std::string nfc(std::string_view utf8);
bool nfc_quick_check(std::string_view utf8);  // true: already NFC (false may still be NFC)

}  // namespace mg::text
