#include "text/added_vocabulary.h"

#include "text/unicode.h"
#include "text/utf8.h"

namespace mg::text {

namespace {
// The start of the whitespace at the end of s[0, end) (the reference's "\s*$").
size_t whitespace_before(std::string_view s, size_t end) {
  size_t start = end;
  while (start > 0) {
    size_t i = start - 1;
    while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;  // back to the character's start
    const size_t n = utf8_sequence_length(s, i);
    if (n == 0 || !is_white_space(utf8_decode(s, i, n))) break;
    start = i;
  }
  return start;
}
// The end of the whitespace at the start of s[begin, ...) (the reference's "^\s*").
size_t whitespace_after(std::string_view s, size_t begin) {
  while (begin < s.size()) {
    const size_t n = utf8_sequence_length(s, begin);
    if (n == 0 || !is_white_space(utf8_decode(s, begin, n))) break;
    begin += n;
  }
  return begin;
}
}  // namespace

AddedTokenMatcher::AddedTokenMatcher(const std::vector<std::pair<std::string, AddedToken>>& patterns) {
  for (const auto& [pattern, token] : patterns) {
    if (pattern.empty()) continue;
    int32_t node = 0;
    for (char c : pattern) {
      const auto byte = static_cast<unsigned char>(c);
      int32_t child = -1;
      for (const auto& [b, index] : nodes_[node].children)
        if (b == byte) child = index;
      if (child < 0) {
        child = static_cast<int32_t>(nodes_.size());
        nodes_[node].children.emplace_back(byte, child);
        nodes_.emplace_back();
      }
      node = child;
    }
    nodes_[node].token = static_cast<int32_t>(tokens_.size());  // a repeated pattern keeps its last token
    tokens_.push_back(token);
    can_start_[static_cast<unsigned char>(pattern[0])] = true;
  }
}

std::pair<const AddedToken*, size_t> AddedTokenMatcher::longest_at(std::string_view text, size_t i) const {
  std::pair<const AddedToken*, size_t> best{nullptr, 0};
  int32_t node = 0;
  for (size_t j = i; j < text.size(); ++j) {
    const auto byte = static_cast<unsigned char>(text[j]);
    int32_t child = -1;
    for (const auto& [b, index] : nodes_[node].children)
      if (b == byte) child = index;
    if (child < 0) break;
    node = child;
    if (nodes_[node].token >= 0) best = {&tokens_[nodes_[node].token], j + 1 - i};
  }
  return best;
}

void AddedTokenMatcher::split(std::string_view text, const std::function<void(std::string_view)>& on_text,
                              const std::function<void(int64_t)>& on_token) const {
  if (empty()) {
    if (!text.empty()) on_text(text);
    return;
  }
  size_t emitted = 0;  // text before this is handed out
  for (size_t i = 0; i < text.size();) {
    if (!can_start_[static_cast<unsigned char>(text[i])]) {
      ++i;
      continue;
    }
    const auto [token, length] = longest_at(text, i);
    if (!token) {
      ++i;
      continue;
    }
    size_t start = i, stop = i + length;
    if (token->lstrip) start = std::max(whitespace_before(text, start), emitted);
    if (token->rstrip) stop = whitespace_after(text, stop);
    if (emitted < start) on_text(text.substr(emitted, start - emitted));
    on_token(token->id);
    emitted = stop;
    i += length;  // the reference's search goes on after the match itself, not after the strip
  }
  if (emitted < text.size()) on_text(text.substr(emitted));
}

}  // namespace mg::text
