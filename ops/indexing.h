#pragma once
// Gathering, scattering, joining and selecting.
#include "tensor/tensor.h"

namespace mg {

// weight (num_embeddings, dim), indices int64 of any shape -> (*indices.shape, dim).
// Backward: scatter-add of the output gradient into the rows of weight.
Tensor embedding(const Tensor& weight, const Tensor& indices);
// Rows of x along dim picked by a 1-D int64 index.
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
Tensor concat(const TensorList& tensors, int64_t dim);
// Pieces of the given sizes along dim (views).
TensorList split(const Tensor& x, const Shape& sizes, int64_t dim);
// `chunks` pieces of equal size (the last may be smaller) along dim (views).
TensorList chunk(const Tensor& x, int64_t chunks, int64_t dim);
// condition ? a : b, elementwise with broadcasting; condition is any dtype (non-zero = true).
Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b);
// x with `value` where mask is non-zero (mask broadcasts to x).
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);

}  // namespace mg
