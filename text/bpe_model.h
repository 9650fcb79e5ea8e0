#pragma once
// The BPE model of a byte-level tokenizer: a piece of text (one pre-tokenizer piece, as bytes)
// becomes token ids by starting from one token per byte and applying the merges by rank, the
// lowest rank first and the leftmost on ties, exactly as the `tokenizers` library's
// Word::merge_all does (a heap of candidate pairs; stale candidates skipped). Results are cached
// per distinct piece, which is what makes English fast: most words repeat.
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace mg::text {

class BpeModel {
 public:
  struct Options {
    std::optional<std::string> unk_token;  // the vocabulary entry for bytes without a token
    bool fuse_unk = false;                 // consecutive unknowns become one unk
    bool ignore_merges = false;            // a piece that is itself in the vocabulary is one token
  };
  BpeModel() = default;
  // vocab: token string (byte-level spelling) -> id; merges: pairs of token strings, in rank
  // order. Throws mg::Error naming the first merge whose parts or result are not in vocab.
  BpeModel(const std::vector<std::pair<std::string, int64_t>>& vocab,
           const std::vector<std::pair<std::string, std::string>>& merges, Options options);
  BpeModel(const BpeModel& other);
  BpeModel& operator=(const BpeModel& other);

  // Appends the ids of `piece` (raw bytes) to `out`.
  void encode_piece(std::string_view piece, std::vector<int64_t>& out) const;
  std::optional<int64_t> id_of(std::string_view token_bytes) const;  // by the bytes a token stands for

 private:
  struct Merge {
    int32_t rank, new_id;
  };
  static uint64_t pair_key(int32_t a, int32_t b) { return static_cast<uint64_t>(a) << 32 | static_cast<uint32_t>(b); }
  std::vector<int32_t> merge(std::string_view piece) const;

  std::unordered_map<std::string, int32_t> vocab_;  // the bytes a token stands for -> id
  std::unordered_map<uint64_t, Merge> merges_;
  int32_t byte_ids_[256];                           // the token of each single byte, or -1
  std::optional<int32_t> unk_id_;
  Options options_;

  // The cache of merged pieces, shared by every encode (guarded: encode may run on any thread).
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  static constexpr size_t kCacheCapacity = 1 << 17;  // pieces; later ones are merged each time
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
  mutable std::mutex cache_mutex_;
};

}  // namespace mg::text
