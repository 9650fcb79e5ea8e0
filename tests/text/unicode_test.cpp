// UTF-8 repair, NFC and the pre-tokenizer's split on cases whose answers are known by hand (the
// BPE fixture test covers them against the reference on a larger corpus).
#include <gtest/gtest.h>

#include "text/pre_tokenizer.h"
#include "text/unicode.h"
#include "text/utf8.h"

namespace mg::text {
namespace {

TEST(Utf8, InvalidSequencesBecomeOneReplacementEachAsPythonDoes) {
  // b"...".decode("utf-8", "replace") in Python 3.11 gives these.
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(to_valid_utf8("abc"), "abc");
  EXPECT_EQ(to_valid_utf8("a\xFF" "b"), "a" + r + "b");
  EXPECT_EQ(to_valid_utf8("\xE2\x82"), r);                   // truncated: one for the maximal subpart
  EXPECT_EQ(to_valid_utf8("\xE2\x28\xA1"), r + "(" + r);
  EXPECT_EQ(to_valid_utf8("\xED\xA0\x80"), r + r + r);       // a surrogate: three
  EXPECT_EQ(to_valid_utf8("\xC0\xAF"), r + r);               // overlong
  EXPECT_EQ(to_valid_utf8("\xF0\x9F\x98"), r);
  EXPECT_EQ(to_valid_utf8("\xF4\x90\x80\x80"), r + r + r + r);  // above U+10FFFF
}

TEST(Utf8, IncompleteTailIsHeldBack) {
  EXPECT_EQ(utf8_incomplete_tail("ab"), 0u);
  EXPECT_EQ(utf8_incomplete_tail("a\xC3"), 1u);
  EXPECT_EQ(utf8_incomplete_tail("a\xF0\x9F\x98"), 3u);
  EXPECT_EQ(utf8_incomplete_tail("a\xF0\x9F\x98\x80"), 0u);
  EXPECT_EQ(utf8_incomplete_tail("a\xFF"), 0u);       // invalid: nothing can complete it
  EXPECT_EQ(utf8_incomplete_tail("a\xE0\x80"), 0u);   // an impossible second byte
}

TEST(Nfc, ComposesReordersAndLeavesNfcTextAlone) {
  EXPECT_EQ(nfc("cafe\xCC\x81"), "caf\xC3\xA9");                       // e + U+0301 -> é
  EXPECT_EQ(nfc("\xE2\x84\xAB"), "\xC3\x85");                          // U+212B ANGSTROM SIGN -> Å
  EXPECT_EQ(nfc("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8"), "\xEA\xB0\x81");  // jamo G A G -> 각
  // a + U+0323 (class 220) + U+0302 (230) and the other order are the same text: ậ
  EXPECT_EQ(nfc("a\xCC\x82\xCC\xA3"), "\xE1\xBA\xAD");
  EXPECT_EQ(nfc("a\xCC\xA3\xCC\x82"), "\xE1\xBA\xAD");
  EXPECT_EQ(nfc("\xCC\x81" "a"), "\xCC\x81" "a");  // a leading mark has nothing to join
  EXPECT_TRUE(nfc_quick_check("plain ASCII and caf\xC3\xA9"));
  EXPECT_FALSE(nfc_quick_check("cafe\xCC\x81"));
}

TEST(CharClass, LettersNumbersSpaces) {
  EXPECT_EQ(char_class(U'a'), CharClass::Letter);
  EXPECT_EQ(char_class(U'中'), CharClass::Letter);
  EXPECT_EQ(char_class(U'7'), CharClass::Number);
  EXPECT_EQ(char_class(U'½'), CharClass::Number);
  EXPECT_EQ(char_class(0x3000), CharClass::Space);
  EXPECT_EQ(char_class(0x200B), CharClass::Other);  // zero width space is not White_Space
  EXPECT_EQ(char_class(0x0301), CharClass::Other);  // a combining mark is not a letter
}

std::vector<std::string> split(std::string_view text) {
  std::vector<std::string_view> pieces;
  byte_level_split(text, pieces);
  return {pieces.begin(), pieces.end()};
}

TEST(PreTokenizer, SplitsAsGpt2sRegex) {
  using V = std::vector<std::string>;
  EXPECT_EQ(split("Hello world's end"), (V{"Hello", " world", "'s", " end"}));
  EXPECT_EQ(split("x  \n\n y"), (V{"x", "  \n\n", " y"}));  // the run keeps all but its last space
  EXPECT_EQ(split("a   "), (V{"a", "   "}));               // at the end: all of it
  EXPECT_EQ(split("a\tb"), (V{"a", "\t", "b"}));           // a lone non-space whitespace
  EXPECT_EQ(split("abc123 456!?"), (V{"abc", "123", " 456", "!?"}));
  EXPECT_EQ(split(" 'Hello"), (V{" '", "Hello"}));
  EXPECT_EQ(split("it'dog"), (V{"it", "'d", "og"}));
  EXPECT_EQ(split(""), V{});
}

}  // namespace
}  // namespace mg::text
