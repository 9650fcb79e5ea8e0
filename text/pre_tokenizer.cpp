#include "text/pre_tokenizer.h"

#include <array>

#include "text/unicode.h"
#include "text/utf8.h"

namespace mg::text {

namespace {

// The classes of the 128 ASCII characters, so that English text never searches the tables.
const std::array<CharClass, 128>& ascii_classes() {
  static const std::array<CharClass, 128> table = [] {
    std::array<CharClass, 128> t{};
    for (char32_t c = 0; c < 128; ++c) t[c] = char_class(c);
    return t;
  }();
  return table;
}

// A scanner over valid UTF-8: the class and byte length of the character at a position.
struct Scanner {
  std::string_view s;
  const std::array<CharClass, 128>& ascii = ascii_classes();

  CharClass at(size_t i, size_t& length) const {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) return length = 1, ascii[b];
    length = utf8_sequence_length(s, i);
    if (length == 0) return length = 1, CharClass::Other;  // unreachable for valid input
    return char_class(utf8_decode(s, i, length));
  }
  // The end of the run of `cls` characters starting at i.
  size_t run_end(size_t i, CharClass cls) const {
    size_t length = 0;
    while (i < s.size() && at(i, length) == cls) i += length;
    return i;
  }
};

// The length of a contraction at s[i] (which is '\''), or 0.
size_t contraction(std::string_view s, size_t i) {
  if (i + 1 >= s.size()) return 0;
  const char c = s[i + 1];
  if (c == 's' || c == 't' || c == 'm' || c == 'd') return 2;
  if (i + 2 < s.size()) {
    const char d = s[i + 2];
    if ((c == 'r' && d == 'e') || (c == 'v' && d == 'e') || (c == 'l' && d == 'l')) return 3;
  }
  return 0;
}

}  // namespace

void byte_level_split(std::string_view text, std::vector<std::string_view>& pieces) {
  const Scanner scan{text};
  size_t i = 0;
  while (i < text.size()) {
    const size_t start = i;
    if (text[i] == '\'') {
      if (const size_t n = contraction(text, i)) {
        pieces.push_back(text.substr(i, n));
        i += n;
        continue;
      }
    }
    size_t length = 0;
    CharClass cls = scan.at(i, length);
    if (text[i] == ' ' && i + 1 < text.size()) {  // " ?X+": a space may lead a run of one class
      size_t next_length = 0;
      const CharClass next = scan.at(i + 1, next_length);
      if (next != CharClass::Space) {
        i = scan.run_end(i + 1, next);
        pieces.push_back(text.substr(start, i - start));
        continue;
      }
    }
    if (cls != CharClass::Space) {
      i = scan.run_end(i, cls);
      pieces.push_back(text.substr(start, i - start));
      continue;
    }
    // Whitespace: "\s+(?!\S)" backs off one character before a non-space; "\s+" takes a lone one.
    size_t last = i;  // start of the run's last character
    while (i < text.size() && scan.at(i, length) == CharClass::Space) last = i, i += length;
    if (i < text.size() && last > start) i = last;
    pieces.push_back(text.substr(start, i - start));
  }
}

}  // namespace mg::text
