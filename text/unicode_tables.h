#pragma once
// The Unicode data tables, generated into text/unicode_tables.cpp by scripts/gen_unicode_tables.py
// (the Unicode version is kUnicodeVersion). Read them through text/unicode.h.
#include <cstddef>
#include <cstdint>

namespace mg::text::tables {

enum CategoryKind : uint8_t { kLetter, kNumber };  // general categories L* and N*

struct CategoryRange {
  char32_t first, last;
  CategoryKind kind;
};
struct CombiningClassRange {
  char32_t first, last;
  uint8_t ccc;  // canonical combining class, non-zero
};
struct Decomposition {
  char32_t code_point;
  uint16_t offset;  // into kDecompositionData
  uint8_t length;   // full (recursive) canonical decomposition
};
struct Composition {
  char32_t first, second, composite;  // primary composites only (no composition exclusions)
};
struct CodePointRange {
  char32_t first, last;
};

extern const char* const kUnicodeVersion;
extern const CategoryRange kLetterNumber[];  // sorted, disjoint
extern const size_t kLetterNumberSize;
extern const char32_t kWhiteSpace[];  // sorted
extern const size_t kWhiteSpaceSize;
extern const CombiningClassRange kCombiningClass[];  // sorted, disjoint
extern const size_t kCombiningClassSize;
extern const Decomposition kDecompositions[];  // sorted by code point; Hangul syllables are algorithmic
extern const size_t kDecompositionsSize;
extern const char32_t kDecompositionData[];
extern const Composition kCompositions[];  // sorted by (first, second); Hangul is algorithmic
extern const size_t kCompositionsSize;
// Code points that can change under NFC or change their neighbours (a decomposition, a non-zero
// combining class, the second half of a composition, Hangul): a string with none is already NFC.
extern const CodePointRange kNfcQuickCheck[];  // sorted, disjoint
extern const size_t kNfcQuickCheckSize;

}  // namespace mg::text::tables
