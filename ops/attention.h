#pragma once
#include "tensor/tensor.h"

namespace mg {

struct AttentionOptions {
  bool causal = true;  // query i sees keys j <= i + (Lk - Lq): the queries are the last Lq positions
  double scale = 0;    // scores = scale q . k; 0 means 1 / sqrt(Dh)
};

// Scaled dot-product attention (Vaswani et al. 2017, eq. 1), fused:
//   q (B, H, Lq, Dh), k (B, H, Lk, Dh), v (B, H, Lk, Dh)  ->  (B, H, Lq, Dh)
//   out = softmax(scale q k^T + mask) v,  mask = -inf where key j is after query i (causal)
// as torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True) when Lq = Lk.
// With Lq < Lk (generation with a KV cache) the queries are the sequence's last Lq positions.
// Differentiable in q, k and v. The CPU kernel (ops/cpu/attention.h) never forms the
// (B, H, Lq, Lk) scores and reads its inputs in place through their strides; the output is laid
// out as (B, Lq, H, Dh) in memory, so out.transpose(1, 2).reshape({B, Lq, H * Dh}) is a view.
// On CUDA it runs the composed reference below (a fused GPU kernel is future work: the composed
// one keeps the scores in memory, fine for the lengths the GPT trains at).
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                   const AttentionOptions& options = {});

// The same attention composed from library ops, as the textbook writes it: matmul, scale, mask,
// softmax, matmul. It forms the (B, H, Lq, Lk) scores; it is the reference the fused op is tested
// against, and runs wherever its ops do.
Tensor scaled_dot_product_attention_reference(const Tensor& q, const Tensor& k, const Tensor& v,
                                             const AttentionOptions& options = {});

}  // namespace mg
