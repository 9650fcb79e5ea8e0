#pragma once
// A KV cache for one attention layer: the keys and values of every position seen so far, so that
// generating the next token attends over them instead of recomputing them. Memory grows with the
// sequence: 2 * B * H * length * Dh elements, held in buffers whose capacity doubles as needed
// (amortized O(1) copying per token).
#include <utility>

#include "tensor/tensor.h"

namespace mg::nn {

class KVCache {
 public:
  KVCache() = default;

  // Writes k_new and v_new (B, H, T, Dh) at positions [length, length + T) and returns views of
  // all keys and values so far, (B, H, length + T, Dh) each, ready for
  // scaled_dot_product_attention(q_new, keys, values) with the causal mask aligned to the end.
  // The first call fixes B, H, Dh, dtype and device; later calls must match them. No autograd.
  std::pair<Tensor, Tensor> append(const Tensor& k_new, const Tensor& v_new);

  int64_t length() const { return length_; }
  int64_t capacity() const { return keys_.defined() ? keys_.size(2) : 0; }
  // Bytes the cached keys and values occupy (2 * B * H * length * Dh elements), and bytes allocated.
  int64_t used_bytes() const;
  int64_t allocated_bytes() const;
  void clear() { *this = KVCache(); }

 private:
  void reserve(int64_t capacity);
  Tensor keys_, values_;  // (B, H, capacity, Dh)
  int64_t length_ = 0;
};

}  // namespace mg::nn
