#pragma once
// Matrix product with PyTorch's rules: 1-D x 1-D is a dot product, 2-D x 2-D a matrix product,
// and batched inputs (..., n, k) x (..., k, m) broadcast their batch dimensions.
// CPU: Eigen GEMM on maps of the operands (no copies for contiguous or transposed matrices).
// CUDA: cuBLAS.
#include "tensor/tensor.h"

namespace mg {

Tensor matmul(const Tensor& a, const Tensor& b);
// x (..., in) @ weight (out, in)^T + bias (out): the Linear layer's op, fused.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

}  // namespace mg
