#pragma once
#include "tensor/tensor.h"

namespace mg {

// Layer normalization over the last dimension (Ba, Kiros & Hinton 2016), fused:
//   x (..., D), weight (D) or undefined, bias (D) or undefined  ->  out (..., D)
//   out = (x - mean(x, -1)) * rsqrt(var(x, -1) + eps) * weight + bias     (biased variance)
// as torch.nn.functional.layer_norm. Differentiable in x, weight and bias. Kernels for the CPU and
// CUDA.
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5);

}  // namespace mg
