#include "text/byte_level.h"

#include <array>

#include "text/utf8.h"

namespace mg::text {

namespace {
struct Maps {
  std::array<char32_t, 256> to_char{};
  std::array<int, 0x144> to_byte{};  // every mapped character is below U+0144
  Maps() {
    to_byte.fill(-1);
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_char[b] = printable ? static_cast<char32_t>(b) : next++;
      to_byte[to_char[b]] = b;
    }
  }
};
const Maps& maps() {
  static const Maps m;
  return m;
}
}  // namespace

char32_t byte_to_char(unsigned char byte) { return maps().to_char[byte]; }

std::optional<unsigned char> char_to_byte(char32_t c) {
  if (c >= maps().to_byte.size() || maps().to_byte[c] < 0) return std::nullopt;
  return static_cast<unsigned char>(maps().to_byte[c]);
}

std::optional<std::string> byte_level_bytes(std::string_view token) {
  std::string bytes;
  bytes.reserve(token.size());
  for (size_t i = 0; i < token.size();) {
    const size_t n = utf8_sequence_length(token, i);
    if (n == 0) return std::nullopt;
    const std::optional<unsigned char> b = char_to_byte(utf8_decode(token, i, n));
    if (!b) return std::nullopt;
    bytes.push_back(static_cast<char>(*b));
    i += n;
  }
  return bytes;
}

std::string byte_level_decode(std::string_view token) {
  std::optional<std::string> bytes = byte_level_bytes(token);
  return bytes ? *bytes : std::string(token);
}

std::string byte_level_encode(std::string_view bytes) {
  std::string out;
  for (char b : bytes) utf8_append(out, byte_to_char(static_cast<unsigned char>(b)));
  return out;
}

}  // namespace mg::text
