#pragma once
// What the programs need from a tokenizer, whichever kind it is: text -> ids, ids -> text, and
// the bytes of one token for streaming. Two implement it: the byte-level BPE of Hugging Face
// tokenizer.json files (text/bpe_tokenizer.h; GPT-NeoX's, which the Mamba models use) and the
// character tokenizer of our own checkpoints (apps/common/char_tokenizer.h).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mg::text {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Ids are in [0, vocab_size()).
  virtual int64_t vocab_size() const = 0;
  // Throws mg::Error when the text cannot be encoded (the character tokenizer's unknown byte).
  virtual std::vector<int64_t> encode(std::string_view text) const = 0;
  // The bytes token `id` stands for; a BPE token may hold part of a UTF-8 character. Throws
  // mg::Error naming an id outside [0, vocab_size()).
  virtual std::string token_bytes(int64_t id) const = 0;
  // The text of `ids`: their bytes joined, as valid UTF-8 (see each implementation).
  virtual std::string decode(const std::vector<int64_t>& ids) const = 0;
};

// Turns generated tokens into printable text one token at a time: bytes that end in the middle
// of a UTF-8 character wait for the tokens that complete it; invalid bytes become U+FFFD, as in
// a whole decode.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}
  std::string push(int64_t id);  // the text that is complete after this token
  std::string finish();          // whatever is left (an unfinished character becomes U+FFFD)

 private:
  const Tokenizer& tokenizer_;
  std::string pending_;
};

}  // namespace mg::text
