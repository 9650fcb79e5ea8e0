#include "text/bpe_model.h"

#include <algorithm>
#include <queue>

#include "tensor/error.h"
#include "text/byte_level.h"

namespace mg::text {

BpeModel::BpeModel(const std::vector<std::pair<std::string, int64_t>>& vocab,
                   const std::vector<std::pair<std::string, std::string>>& merges, Options options)
    : options_(std::move(options)) {
  std::fill(std::begin(byte_ids_), std::end(byte_ids_), -1);
  std::unordered_map<std::string, int32_t> by_spelling;  // as merges name them
  for (const auto& [token, id] : vocab) {
    MG_CHECK(id >= 0 && id < (int64_t{1} << 31), "tokenizer: vocabulary id ", id, " of \"", token, "\" is out of range");
    by_spelling[token] = static_cast<int32_t>(id);
    // A token spelled with characters outside the byte-level alphabet (a special token placed in
    // the vocabulary) can never come out of a byte-level piece: it is not looked up by bytes.
    if (std::optional<std::string> bytes = byte_level_bytes(token)) {
      vocab_[*bytes] = static_cast<int32_t>(id);
      if (bytes->size() == 1) byte_ids_[static_cast<unsigned char>((*bytes)[0])] = static_cast<int32_t>(id);
    }
  }
  auto id_of_spelling = [&](const std::string& token, size_t rank) {
    auto it = by_spelling.find(token);
    MG_CHECK(it != by_spelling.end(), "tokenizer: merge ", rank, " (\"", merges[rank].first, "\" \"",
             merges[rank].second, "\") uses \"", token, "\", which is not in the vocabulary");
    return it->second;
  };
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    const int32_t new_id = id_of_spelling(a + b, rank);
    // A repeated pair keeps its last rank, as the reference's hash map does.
    merges_[pair_key(id_of_spelling(a, rank), id_of_spelling(b, rank))] = {static_cast<int32_t>(rank), new_id};
  }
  if (options_.unk_token) {
    auto it = by_spelling.find(*options_.unk_token);
    MG_CHECK(it != by_spelling.end(), "tokenizer: unk_token \"", *options_.unk_token, "\" is not in the vocabulary");
    unk_id_ = it->second;
  }
}

BpeModel::BpeModel(const BpeModel& other)
    : vocab_(other.vocab_), merges_(other.merges_), unk_id_(other.unk_id_), options_(other.options_) {
  std::copy(std::begin(other.byte_ids_), std::end(other.byte_ids_), byte_ids_);
}

BpeModel& BpeModel::operator=(const BpeModel& other) {
  if (this != &other) {
    vocab_ = other.vocab_, merges_ = other.merges_, unk_id_ = other.unk_id_, options_ = other.options_;
    std::copy(std::begin(other.byte_ids_), std::end(other.byte_ids_), byte_ids_);
    std::lock_guard lock(cache_mutex_);
    cache_.clear();
  }
  return *this;
}

std::optional<int64_t> BpeModel::id_of(std::string_view token_bytes) const {
  auto it = vocab_.find(std::string(token_bytes));
  return it == vocab_.end() ? std::nullopt : std::optional<int64_t>(it->second);
}

std::vector<int32_t> BpeModel::merge(std::string_view piece) const {
  struct Symbol {
    int32_t id, prev, next;
    bool removed;
  };
  // One symbol per byte; a byte without a token is an unknown (or dropped when there is no unk).
  std::vector<Symbol> symbols;
  symbols.reserve(piece.size());
  bool last_was_unk = false;
  for (char c : piece) {
    const int32_t id = byte_ids_[static_cast<unsigned char>(c)];
    if (id < 0) {
      if (unk_id_ && !(options_.fuse_unk && last_was_unk))
        symbols.push_back({*unk_id_, 0, 0, false});
      last_was_unk = unk_id_.has_value();
      continue;
    }
    last_was_unk = false;
    symbols.push_back({id, 0, 0, false});
  }
  const auto n = static_cast<int32_t>(symbols.size());
  for (int32_t i = 0; i < n; ++i) symbols[i].prev = i - 1, symbols[i].next = i + 1 < n ? i + 1 : -1;

  struct Candidate {
    int32_t rank, pos, new_id;
    bool operator<(const Candidate& o) const {  // the heap's top: lowest rank, then leftmost
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate> queue;
  auto consider = [&](int32_t pos) {
    const int32_t next = symbols[pos].next;
    if (next < 0) return;
    auto it = merges_.find(pair_key(symbols[pos].id, symbols[next].id));
    if (it != merges_.end()) queue.push({it->second.rank, pos, it->second.new_id});
  };
  for (int32_t i = 0; i + 1 < n; ++i) consider(i);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (left.removed || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    auto it = merges_.find(pair_key(left.id, right.id));
    if (it == merges_.end() || it->second.new_id != top.new_id) continue;  // stale: the pair changed
    left.id = top.new_id;
    right.removed = true;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (left.prev >= 0) consider(left.prev);
    consider(top.pos);
  }
  std::vector<int32_t> ids;
  for (const Symbol& s : symbols)
    if (!s.removed) ids.push_back(s.id);
  return ids;
}

void BpeModel::encode_piece(std::string_view piece, std::vector<int64_t>& out) const {
  if (piece.empty()) return;
  if (options_.ignore_merges)
    if (auto it = vocab_.find(std::string(piece)); it != vocab_.end()) return out.push_back(it->second);
  {
    std::lock_guard lock(cache_mutex_);
    if (auto it = cache_.find(piece); it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids = merge(piece);
  out.insert(out.end(), ids.begin(), ids.end());
  std::lock_guard lock(cache_mutex_);
  if (cache_.size() < kCacheCapacity) cache_.emplace(std::string(piece), std::move(ids));
}

}  // namespace mg::text
