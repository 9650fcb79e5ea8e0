#pragma once
#include "tensor/tensor.h"

namespace mg {

// The causal depthwise convolution Mamba applies along the sequence:
//   x (B, C, L), weight (C, K), bias (C) or undefined  ->  out (B, C, L)
//   out[b, c, t] = bias[c] + sum_{k<K} weight[c, k] * x[b, c, t - (K - 1) + k]
// with x taken as zero at negative times (left padding K - 1), so out[t] sees only x[<= t].
Tensor causal_conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

}  // namespace mg

namespace mg {

// One step of causal_conv1d for recurrent generation, O(K) per channel; no autograd.
//   state (B, C, K): the last K inputs, oldest first; shifted left in place, x appended.
//   x (B, C), weight (C, K), bias (C) or undefined  ->  out (B, C)
//   out[b, c] = bias[c] + sum_k weight[c, k] * state[b, c, k]   (after the shift)
// Equals causal_conv1d's output at the newest position of the same inputs.
Tensor causal_conv1d_step(Tensor& state, const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

}  // namespace mg
