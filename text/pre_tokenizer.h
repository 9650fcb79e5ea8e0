#pragma once
// The byte-level pre-tokenizer's split (GPT-2's, used by GPT-NeoX and Mamba): text cut into the
// pieces BPE then encodes one by one, as the `tokenizers` library cuts it with the regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// (alternatives tried in order, each greedy). std::regex cannot express \p{L}, and a general
// engine is slow, so this is a hand-written scanner over the character classes of text/unicode.h:
//   - a contraction ('s 't 're 've 'm 'll 'd, lower case only);
//   - an optional single space (U+0020) and a run of letters, of numbers, or of other characters;
//   - a run of whitespace: all of it at the end of the text, else all but its last character
//     (which then leads the next piece: " world"), or the one whitespace character before a
//     non-space.
#include <string_view>
#include <vector>

namespace mg::text {

// Appends the pieces of `text` (valid UTF-8) to `pieces`; they cover the text in order.
void byte_level_split(std::string_view text, std::vector<std::string_view>& pieces);

}  // namespace mg::text
