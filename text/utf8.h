#pragma once
// UTF-8: decoding one code point, encoding one, and repairing invalid input the way Python's
// bytes.decode("utf-8", "replace") and Rust's String::from_utf8_lossy do (the `tokenizers`
// library's decoder uses the latter): each maximal invalid subpart becomes one U+FFFD.
#include <cstddef>
#include <string>
#include <string_view>

namespace mg::text {

constexpr char32_t kReplacementCharacter = 0xFFFD;

// The length of the valid UTF-8 sequence starting at s[i], or 0 when none starts there.
size_t utf8_sequence_length(std::string_view s, size_t i);
// The code point of the valid sequence of `length` bytes at s[i] (from utf8_sequence_length).
char32_t utf8_decode(std::string_view s, size_t i, size_t length);
void utf8_append(std::string& out, char32_t code_point);

// Whether `s` is valid UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF).
bool is_valid_utf8(std::string_view s);
// `s` with every maximal invalid subpart replaced by U+FFFD (EF BF BD); `s` itself when valid.
std::string to_valid_utf8(std::string_view s);
// How many bytes at the end of `s` are the start of a sequence that more bytes could complete
// (0-3): a streaming decoder holds them back until the next token arrives.
size_t utf8_incomplete_tail(std::string_view s);

}  // namespace mg::text
