#pragma once
// A character-level tokenizer: the sorted set of distinct bytes of the training text, each
// mapped to its rank. TinyShakespeare has 65 of them. Stored in checkpoints as the string of
// its characters, so a model always travels with the vocabulary it was trained on. One of the
// two tokenizers behind text/tokenizer.h (the other: the byte-level BPE of pretrained models).
#include <array>
#include <string>
#include <vector>

#include "tensor/tensor.h"
#include "text/tokenizer.h"

namespace mg::apps {

class CharTokenizer : public text::Tokenizer {
 public:
  CharTokenizer() = default;
  // Every distinct byte of `text`, sorted. Throws on empty text.
  static CharTokenizer from_text(const std::string& text);
  // The vocabulary as stored: its characters in id order (no duplicates).
  static CharTokenizer from_vocabulary(const std::string& characters);

  int64_t size() const { return static_cast<int64_t>(chars_.size()); }
  int64_t vocab_size() const override { return size(); }
  const std::string& vocabulary() const { return chars_; }
  bool contains(char c) const { return ids_[static_cast<unsigned char>(c)] >= 0; }
  // Throws mg::Error naming the first character outside the vocabulary and its position.
  std::vector<int64_t> encode(std::string_view text) const override;
  // The characters as they are (bytes; TinyShakespeare's are ASCII).
  std::string decode(const std::vector<int64_t>& ids) const override;
  char decode(int64_t id) const;
  std::string token_bytes(int64_t id) const override { return std::string(1, decode(id)); }
  // The same tokenizer as a Hugging Face tokenizer.json that the tokenizers library loads: a
  // byte-level BPE without merges whose vocabulary is these characters, in this order, and whose
  // pre-tokenizer does not split (each byte becomes its token; bytes outside the vocabulary are
  // dropped there, where encode() here refuses them).
  std::string to_tokenizer_json() const;

 private:
  std::string chars_;
  std::array<int64_t, 256> ids_{};
};

}  // namespace mg::apps
