#pragma once
// GPT-2's byte-to-unicode map, which byte-level BPE vocabularies are written in: each of the 256
// bytes is one printable character (the printable Latin-1 ones stand for themselves, the others
// are shifted to U+0100..U+0143; the space byte is 'Ġ' U+0120, the newline 'Ċ' U+010A). A
// vocabulary entry read this way is the byte string the token stands for.
#include <optional>
#include <string>
#include <string_view>

namespace mg::text {

char32_t byte_to_char(unsigned char byte);
std::optional<unsigned char> char_to_byte(char32_t c);  // nullopt outside the 256 characters

// The bytes a token string stands for, as the `tokenizers` ByteLevel decoder reads it: when every
// character is one of the 256, the bytes they map to; otherwise (an added token such as "   ")
// the string's own UTF-8 bytes.
std::string byte_level_decode(std::string_view token);
// The inverse for a string made only of the 256 characters; nullopt if another appears.
std::optional<std::string> byte_level_bytes(std::string_view token);
std::string byte_level_encode(std::string_view bytes);  // bytes -> the vocabulary's spelling

}  // namespace mg::text
