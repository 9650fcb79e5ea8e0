#pragma once
// Elementwise unary ops. Each one's forward and backward are side by side in ops/unary_math.cpp.
#include "tensor/tensor.h"

namespace mg {

Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor pow(const Tensor& x, double exponent);
Tensor abs(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor gelu(const Tensor& x);  // exact: x * Phi(x), with Phi the standard normal CDF
// GPT-2's tanh approximation: x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as PyTorch's
// gelu(x, approximate="tanh"); within ~1e-3 of the exact gelu.
Tensor gelu_tanh(const Tensor& x);
Tensor silu(const Tensor& x);  // x * sigmoid(x)
// log(1 + exp(beta x)) / beta, and x itself where beta x > threshold (PyTorch's defaults).
Tensor softplus(const Tensor& x, double beta = 1.0, double threshold = 20.0);

inline Tensor operator-(const Tensor& x) { return neg(x); }

}  // namespace mg
