#include "apps/common/char_tokenizer.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "text/byte_level.h"

namespace mg::apps {

namespace {
std::string printable(char c) {
  if (c == '\n') return "\\n";
  if (static_cast<unsigned char>(c) < 32 || static_cast<unsigned char>(c) > 126)
    return str("\\x", "0123456789abcdef"[(c >> 4) & 15], "0123456789abcdef"[c & 15]);
  return std::string(1, c);
}
}  // namespace

CharTokenizer CharTokenizer::from_text(const std::string& text) {
  MG_CHECK(!text.empty(), "tokenizer: the training text is empty");
  std::array<bool, 256> seen{};
  for (char c : text) seen[static_cast<unsigned char>(c)] = true;
  std::string chars;
  for (int c = 0; c < 256; ++c)
    if (seen[c]) chars.push_back(static_cast<char>(c));
  return from_vocabulary(chars);
}

CharTokenizer CharTokenizer::from_vocabulary(const std::string& characters) {
  MG_CHECK(!characters.empty(), "tokenizer: empty vocabulary");
  CharTokenizer t;
  t.chars_ = characters;
  t.ids_.fill(-1);
  for (size_t i = 0; i < characters.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(characters[i]);
    MG_CHECK(t.ids_[c] < 0, "tokenizer: character '", printable(characters[i]), "' appears twice in the vocabulary");
    t.ids_[c] = static_cast<int64_t>(i);
  }
  return t;
}

std::vector<int64_t> CharTokenizer::encode(std::string_view text) const {
  std::vector<int64_t> ids;
  ids.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    int64_t id = ids_[static_cast<unsigned char>(text[i])];
    MG_CHECK(id >= 0, "tokenizer: character '", printable(text[i]), "' at position ", i,
             " is not in the model's vocabulary of ", size(), " characters");
    ids.push_back(id);
  }
  return ids;
}

char CharTokenizer::decode(int64_t id) const {
  MG_CHECK(id >= 0 && id < size(), "tokenizer: id ", id, " is outside the vocabulary [0, ", size(), ")");
  return chars_[id];
}

std::string CharTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string text;
  text.reserve(ids.size());
  for (int64_t id : ids) text.push_back(decode(id));
  return text;
}

std::string CharTokenizer::to_tokenizer_json() const {
  using nlohmann::ordered_json;
  ordered_json vocab = ordered_json::object();
  for (size_t i = 0; i < chars_.size(); ++i) vocab[text::byte_level_encode(chars_.substr(i, 1))] = i;
  const ordered_json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
                                   {"use_regex", false}};
  const ordered_json j = {{"version", "1.0"},
                          {"truncation", nullptr},
                          {"padding", nullptr},
                          {"added_tokens", ordered_json::array()},
                          {"normalizer", nullptr},
                          {"pre_tokenizer", byte_level},
                          {"post_processor", nullptr},
                          {"decoder", byte_level},
                          {"model",
                           {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
                            {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
                            {"fuse_unk", false}, {"byte_fallback", false}, {"vocab", vocab},
                            {"merges", ordered_json::array()}}}};
  return j.dump(2) + "\n";
}

}  // namespace mg::apps
