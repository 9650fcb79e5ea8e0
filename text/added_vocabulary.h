#pragma once
// Added tokens (special tokens such as <|endoftext|>, and GPT-NeoX's runs of spaces): strings
// matched in the text before BPE sees it, each becoming its own id, as the `tokenizers` library's
// AddedVocabulary does it:
//   1. tokens with normalized = false are matched in the raw text;
//   2. the rest of the text is normalized (NFC), and tokens with normalized = true are matched
//      in it (their own content normalized the same way);
//   3. what is left goes to the pre-tokenizer and BPE.
// Matching is leftmost-longest (the reference's Aho-Corasick MatchKind::LeftmostLongest) over a
// byte trie; lstrip/rstrip make a token absorb the whitespace beside it.
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace mg::text {

struct AddedToken {
  int64_t id = 0;
  std::string content;
  bool special = false;     // skipped by decode(..., skip_special = true)
  bool single_word = false;  // not supported (mg::Error at load)
  bool lstrip = false, rstrip = false;
  bool normalized = true;  // matched after normalization (else in the raw text)
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  // patterns: (the string to find, the token) pairs.
  explicit AddedTokenMatcher(const std::vector<std::pair<std::string, AddedToken>>& patterns);
  bool empty() const { return nodes_.size() <= 1; }
  // Calls on_text(segment) for the text between matches and on_token(id) for each match, in order.
  void split(std::string_view text, const std::function<void(std::string_view)>& on_text,
             const std::function<void(int64_t)>& on_token) const;

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> children;
    int32_t token = -1;  // the index in tokens_ of the pattern that ends here
  };
  // The longest pattern that starts at text[i], or {nullptr, 0}.
  std::pair<const AddedToken*, size_t> longest_at(std::string_view text, size_t i) const;
  std::vector<Node> nodes_{1};
  std::vector<AddedToken> tokens_;
  bool can_start_[256] = {};
};

}  // namespace mg::text
