#include "nn/layer_norm.h"

#include "ops/layer_norm.h"
#include "tensor/factory.h"

namespace mg::nn {

LayerNorm::LayerNorm(int64_t dim, double eps, DType dtype) : UnaryModule("LayerNorm"), dim(dim), eps(eps) {
  MG_CHECK(dim > 0, "LayerNorm: dim must be positive, got ", dim);
  weight = register_parameter("weight", ones({dim}, {.dtype = dtype}));
  bias = register_parameter("bias", zeros({dim}, {.dtype = dtype}));
}

Tensor LayerNorm::forward(const Tensor& x) {
  MG_CHECK(x.defined() && x.dim() >= 1 && x.size(-1) == dim, "LayerNorm: expected input (..., ", dim, "), got ",
           x.defined() ? x.shape() : Shape{});
  return layer_norm(x, weight, bias, eps);
}

}  // namespace mg::nn
