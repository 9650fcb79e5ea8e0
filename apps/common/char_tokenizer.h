#pragma once
// A character-level tokenizer: the sorted set of distinct bytes of the training text, each
// mapped to its rank. TinyShakespeare has 65 of them. Stored in checkpoints as the string of
// its characters, so a model always travels with the vocabulary it was trained on.
#include <array>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace mg::apps {

class CharTokenizer {
 public:
  CharTokenizer() = default;
  // Every distinct byte of `text`, sorted. Throws on empty text.
  static CharTokenizer from_text(const std::string& text);
  // The vocabulary as stored: its characters in id order (no duplicates).
  static CharTokenizer from_vocabulary(const std::string& characters);

  int64_t size() const { return static_cast<int64_t>(chars_.size()); }
  const std::string& vocabulary() const { return chars_; }
  bool contains(char c) const { return ids_[static_cast<unsigned char>(c)] >= 0; }
  // Throws mg::Error naming the first character outside the vocabulary and its position.
  std::vector<int64_t> encode(const std::string& text) const;
  std::string decode(const std::vector<int64_t>& ids) const;
  char decode(int64_t id) const;

 private:
  std::string chars_;
  std::array<int64_t, 256> ids_{};
};

}  // namespace mg::apps
