#pragma once
// Fused causal (or full) scaled-dot-product attention on the CPU, FlashAttention-style: the
// scores of one block of queries against one block of keys live in a small buffer, the softmax is
// computed online over the key blocks, and the (B, H, Lq, Lk) matrix never exists. The backward
// recomputes the probabilities from the saved row log-sum-exp.
//
// Every operand is a (B, H, L, Dh) tensor read in place through its strides, with unit stride
// along Dh: the heads of a packed (B, L, 3, H, Dh) projection, a transposed view, or a KV cache
// with room to spare all work without a copy.
//
// Masking: query i (of Lq) sees keys j (of Lk) with j <= i + (Lk - Lq) when causal (the queries
// are the last Lq positions of the keys' sequence: Lq = Lk in training, Lq = 1 when generating
// with a KV cache), and every key otherwise.
#include <cstdint>

namespace mg::cpu {

template <class T>
struct HeadsView {
  T* data = nullptr;
  int64_t stride_b = 0, stride_h = 0, stride_l = 0;  // in elements; the stride along Dh is 1
  T* row(int64_t b, int64_t h, int64_t l) const { return data + b * stride_b + h * stride_h + l * stride_l; }
};

struct AttentionSizes {
  int64_t B = 0, H = 0, Lq = 0, Lk = 0, Dh = 0;
  double scale = 1.0;  // scores = scale * q . k
  bool causal = true;
};

// out (B, H, Lq, Dh) = softmax(scale q k^T, masked) v;  lse (B, H, Lq), contiguous, saved for the
// backward: lse = log sum_j exp(scale q . k_j) over the visible keys.
// Work items are (b, h, block of queries): independent, so the bits do not depend on the thread count.
template <class T>
void attention_forward_cpu(const HeadsView<T>& out, T* lse, const HeadsView<const T>& q, const HeadsView<const T>& k,
                           const HeadsView<const T>& v, const AttentionSizes& sizes);

// From dout (B, H, Lq, Dh) and the forward's q, k, v, out and lse: dq, dk, dv (shaped as q, k, v).
// Work items are (b, h) pairs, each summing over its blocks in a fixed order.
template <class T>
void attention_backward_cpu(const HeadsView<T>& dq, const HeadsView<T>& dk, const HeadsView<T>& dv,
                            const HeadsView<const T>& dout, const HeadsView<const T>& q, const HeadsView<const T>& k,
                            const HeadsView<const T>& v, const HeadsView<const T>& out, const T* lse,
                            const AttentionSizes& sizes);

}  // namespace mg::cpu
