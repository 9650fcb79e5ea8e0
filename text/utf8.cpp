#include "text/utf8.h"

namespace mg::text {

namespace {
// The valid range of the second byte after lead byte `lead` (Unicode Table 3-7), and how many
// continuation bytes follow in all; {0, 0, 0} for a byte that cannot start a sequence.
struct LeadByte {
  unsigned char second_min, second_max;
  int continuation;
};
LeadByte lead_byte(unsigned char b) {
  if (b >= 0xC2 && b <= 0xDF) return {0x80, 0xBF, 1};
  if (b == 0xE0) return {0xA0, 0xBF, 2};
  if (b == 0xED) return {0x80, 0x9F, 2};  // no surrogates
  if (b >= 0xE1 && b <= 0xEF) return {0x80, 0xBF, 2};
  if (b == 0xF0) return {0x90, 0xBF, 3};
  if (b >= 0xF1 && b <= 0xF3) return {0x80, 0xBF, 3};
  if (b == 0xF4) return {0x80, 0x8F, 3};  // nothing above U+10FFFF
  return {0, 0, 0};
}
bool is_continuation(unsigned char b) { return b >= 0x80 && b <= 0xBF; }

// How many bytes of a (possibly invalid) sequence at s[i] are a valid prefix: the sequence's
// length when complete; fewer when it breaks off or the input ends (the maximal subpart).
size_t valid_prefix(std::string_view s, size_t i, bool& complete) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  complete = false;
  if (b0 < 0x80) return complete = true, 1;
  const LeadByte lead = lead_byte(b0);
  if (lead.continuation == 0) return 0;
  size_t n = 1;
  if (i + n >= s.size()) return n;
  const auto b1 = static_cast<unsigned char>(s[i + 1]);
  if (b1 < lead.second_min || b1 > lead.second_max) return n;
  for (n = 2; n <= static_cast<size_t>(lead.continuation); ++n) {
    if (i + n >= s.size()) return n;
    if (!is_continuation(static_cast<unsigned char>(s[i + n]))) return n;
  }
  complete = true;
  return n;
}
}  // namespace

size_t utf8_sequence_length(std::string_view s, size_t i) {
  bool complete = false;
  const size_t n = valid_prefix(s, i, complete);
  return complete ? n : 0;
}

char32_t utf8_decode(std::string_view s, size_t i, size_t length) {
  const auto byte = [&](size_t k) { return static_cast<char32_t>(static_cast<unsigned char>(s[i + k])); };
  switch (length) {
    case 1: return byte(0);
    case 2: return (byte(0) & 0x1F) << 6 | (byte(1) & 0x3F);
    case 3: return (byte(0) & 0x0F) << 12 | (byte(1) & 0x3F) << 6 | (byte(2) & 0x3F);
    default: return (byte(0) & 0x07) << 18 | (byte(1) & 0x3F) << 12 | (byte(2) & 0x3F) << 6 | (byte(3) & 0x3F);
  }
}

void utf8_append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool is_valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t n = utf8_sequence_length(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string to_valid_utf8(std::string_view s) {
  if (is_valid_utf8(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 8);
  for (size_t i = 0; i < s.size();) {
    bool complete = false;
    const size_t n = valid_prefix(s, i, complete);
    if (complete) {
      out.append(s.substr(i, n));
      i += n;
    } else {  // the maximal subpart (at least the one bad byte) becomes one U+FFFD
      utf8_append(out, kReplacementCharacter);
      i += n == 0 ? 1 : n;
    }
  }
  return out;
}

size_t utf8_incomplete_tail(std::string_view s) {
  // A sequence is at most 4 bytes: look for its start among the last 3.
  for (size_t back = 1; back <= 3 && back <= s.size(); ++back) {
    const size_t i = s.size() - back;
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) return 0;
    if (is_continuation(b)) continue;
    bool complete = false;
    const size_t n = valid_prefix(s, i, complete);
    return !complete && n == back ? back : 0;  // a valid prefix that runs to the end: wait for more
  }
  return 0;
}

}  // namespace mg::text
