#include "text/unicode.h"

#include <algorithm>
#include <vector>

#include "text/unicode_tables.h"
#include "text/utf8.h"

namespace mg::text {

namespace {
using namespace tables;

// Hangul syllables compose and decompose by arithmetic (Unicode 3.12), not by table.
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

template <class Range>
const Range* find_range(const Range* ranges, size_t size, char32_t cp) {
  const Range* end = ranges + size;
  const Range* it = std::upper_bound(ranges, end, cp, [](char32_t c, const Range& r) { return c < r.first; });
  if (it == ranges) return nullptr;
  --it;
  return cp <= it->last ? it : nullptr;
}

void decompose(char32_t cp, std::vector<char32_t>& out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const char32_t s = cp - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + s % kNCount / kTCount);
    if (s % kTCount != 0) out.push_back(kTBase + s % kTCount);
    return;
  }
  const Decomposition* end = kDecompositions + kDecompositionsSize;
  const Decomposition* it = std::lower_bound(kDecompositions, end, cp,
                                             [](const Decomposition& d, char32_t c) { return d.code_point < c; });
  if (it != end && it->code_point == cp)
    out.insert(out.end(), kDecompositionData + it->offset, kDecompositionData + it->offset + it->length);
  else
    out.push_back(cp);
}

// The primary composite of (a, b), or 0 when there is none.
char32_t compose(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase && b < kTBase + kTCount)
    return a + (b - kTBase);
  const Composition* end = kCompositions + kCompositionsSize;
  const Composition* it = std::lower_bound(kCompositions, end, std::pair{a, b}, [](const Composition& c, auto key) {
    return c.first != key.first ? c.first < key.first : c.second < key.second;
  });
  return it != end && it->first == a && it->second == b ? it->composite : 0;
}

bool nfc_sensitive(char32_t cp) { return find_range(kNfcQuickCheck, kNfcQuickCheckSize, cp) != nullptr; }
}  // namespace

const char* unicode_version() { return kUnicodeVersion; }

CharClass char_class(char32_t cp) {
  if (const CategoryRange* r = find_range(kLetterNumber, kLetterNumberSize, cp))
    return r->kind == kLetter ? CharClass::Letter : CharClass::Number;
  return is_white_space(cp) ? CharClass::Space : CharClass::Other;
}

bool is_white_space(char32_t cp) { return std::binary_search(kWhiteSpace, kWhiteSpace + kWhiteSpaceSize, cp); }

int canonical_combining_class(char32_t cp) {
  const CombiningClassRange* r = find_range(kCombiningClass, kCombiningClassSize, cp);
  return r ? r->ccc : 0;
}

bool nfc_quick_check(std::string_view s) {
  // Every code point below U+0300 is NFC-inert, and those are the only ones encoded with lead
  // bytes below 0xCC: a byte scan settles ASCII and Latin-1 text.
  size_t i = 0;
  while (i < s.size() && static_cast<unsigned char>(s[i]) < 0xCC) ++i;
  while (i < s.size()) {
    const size_t n = std::max<size_t>(utf8_sequence_length(s, i), 1);
    if (n > 1 && nfc_sensitive(utf8_decode(s, i, n))) return false;
    i += n;
  }
  return true;
}

std::string nfc(std::string_view s) {
  if (nfc_quick_check(s)) return std::string(s);
  // 1. Full canonical decomposition.
  std::vector<char32_t> cps;
  cps.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t n = std::max<size_t>(utf8_sequence_length(s, i), 1);  // the input is valid UTF-8
    decompose(utf8_decode(s, i, n), cps);
    i += n;
  }
  // 2. Canonical ordering: each run of non-starters stably sorted by combining class.
  std::vector<int> ccc(cps.size());
  for (size_t i = 0; i < cps.size(); ++i) ccc[i] = canonical_combining_class(cps[i]);
  for (size_t i = 0; i < cps.size();) {
    if (ccc[i] == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < cps.size() && ccc[j] != 0) ++j;
    for (size_t a = i + 1; a < j; ++a)  // insertion sort: runs are short, and it is stable
      for (size_t b = a; b > i && ccc[b - 1] > ccc[b]; --b) std::swap(cps[b - 1], cps[b]), std::swap(ccc[b - 1], ccc[b]);
    i = j;
  }
  // 3. Canonical composition (UAX #15's algorithm): a character joins the last starter when no
  // character between them blocks it (one of the same or a higher class, or a starter).
  size_t out = 0, starter = 0;
  bool have_starter = false;
  int last_class = 256;  // of the last character kept; 0 means that character is the starter
  for (size_t i = 0; i < cps.size(); ++i) {
    const char32_t c = cps[i];
    const int cls = ccc[i];
    if (have_starter && (last_class < cls || last_class == 0))
      if (const char32_t composite = compose(cps[starter], c)) {
        cps[starter] = composite;
        continue;
      }
    if (cls == 0) starter = out, have_starter = true;
    last_class = cls;
    cps[out++] = c;
  }
  std::string result;
  result.reserve(s.size());
  for (size_t i = 0; i < out; ++i) utf8_append(result, cps[i]);
  return result;
}

}  // namespace mg::text
