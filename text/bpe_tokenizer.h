#pragma once
// A byte-level BPE tokenizer read from a Hugging Face tokenizer.json: GPT-NeoX's (which every
// Mamba model uses) and any other of the same kind, with the `tokenizers` library's behaviour:
//   encode: invalid UTF-8 -> U+FFFD (as Python's decode(errors="replace"), the only way such
//           bytes reach the reference), added tokens split out (text/added_vocabulary.h), NFC
//           (when the file names it), the byte-level pre-tokenizer (text/pre_tokenizer.h),
//           BPE on each piece's bytes (text/bpe_model.h);
//   decode: each token's bytes joined (text/byte_level.h), then invalid UTF-8 -> U+FFFD per
//           maximal subpart (Rust's String::from_utf8_lossy, which the reference uses).
// What a file may hold: normalizer null or NFC; pre_tokenizer ByteLevel; model BPE (no dropout,
// no byte fallback, no subword prefix or suffix); decoder ByteLevel or null; post_processor
// ByteLevel or null; added tokens without single_word. Anything else is refused with an
// mg::Error that names the file and the setting. truncation and padding (batching settings of
// the reference's encode_batch) are not applied.
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "text/added_vocabulary.h"
#include "text/bpe_model.h"
#include "text/tokenizer.h"

namespace mg::text {

class BpeTokenizer : public Tokenizer {
 public:
  static BpeTokenizer load(const std::string& path);  // a tokenizer.json
  // `source` names the text in error messages.
  static BpeTokenizer from_json(std::string_view json, const std::string& source = "<memory>");

  int64_t vocab_size() const override { return static_cast<int64_t>(token_bytes_.size()); }
  std::vector<int64_t> encode(std::string_view text) const override;
  std::string token_bytes(int64_t id) const override;
  // Keeps special tokens, as transformers' decode does by default (the tokenizers library's
  // Python decode skips them by default: pass skip_special = true for that).
  std::string decode(const std::vector<int64_t>& ids) const override { return decode(ids, false); }
  std::string decode(const std::vector<int64_t>& ids, bool skip_special) const;

  // The id of a token by its content as the file spells it (an added token's content, or a
  // vocabulary entry in byte-level spelling); nullopt when there is none.
  std::optional<int64_t> token_id(std::string_view token) const;
  const std::vector<AddedToken>& added_tokens() const { return added_; }

 private:
  void encode_normalized(std::string_view text, std::vector<int64_t>& ids) const;
  void encode_pieces(std::string_view text, std::vector<int64_t>& ids) const;

  BpeModel model_;
  std::vector<AddedToken> added_;
  AddedTokenMatcher raw_matcher_, normalized_matcher_;
  bool nfc_ = false;
  bool add_prefix_space_ = false, use_regex_ = true;
  std::vector<std::string> token_bytes_;  // by id; what decode joins
  std::vector<std::string> spelling_;     // by id; as the file spells it
  std::vector<bool> has_token_, special_;  // by id
};

}  // namespace mg::text
