#pragma once
// Reductions over dimensions. An empty dims list reduces over all dimensions.
#include "tensor/tensor.h"

namespace mg {

Tensor sum(const Tensor& x, const Shape& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const Shape& dims = {}, bool keepdim = false);
// Maximum over one dimension; the gradient flows to the first index attaining the maximum.
Tensor max(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor max(const Tensor& x);  // over all elements
// Index of the maximum along `dim` (int64, not differentiable).
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);

}  // namespace mg
