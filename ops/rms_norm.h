#pragma once
#include "tensor/tensor.h"

namespace mg {

// Root-mean-square normalization over the last dimension (Zhang & Sennrich 2019), fused:
//   x (..., D), weight (D) or undefined  ->  out (..., D)
//   out = x * rsqrt(mean(x^2, -1) + eps) * weight
// Differentiable in x and weight.
Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps = 1e-5);

}  // namespace mg
