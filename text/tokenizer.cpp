#include "text/tokenizer.h"

#include "text/utf8.h"

namespace mg::text {

std::string StreamDecoder::push(int64_t id) {
  pending_ += tokenizer_.token_bytes(id);
  const size_t keep = utf8_incomplete_tail(pending_);
  std::string ready = to_valid_utf8(std::string_view(pending_).substr(0, pending_.size() - keep));
  pending_.erase(0, pending_.size() - keep);
  return ready;
}

std::string StreamDecoder::finish() {
  std::string rest = to_valid_utf8(pending_);
  pending_.clear();
  return rest;
}

}  // namespace mg::text
