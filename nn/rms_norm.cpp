#include "nn/rms_norm.h"

#include "ops/rms_norm.h"
#include "tensor/factory.h"

namespace mg::nn {

RMSNorm::RMSNorm(int64_t dim, double eps, DType dtype) : UnaryModule("RMSNorm"), dim(dim), eps(eps) {
  MG_CHECK(dim > 0, "RMSNorm: dim must be positive, got ", dim);
  weight = register_parameter("weight", ones({dim}, {.dtype = dtype}));
}

Tensor RMSNorm::forward(const Tensor& x) { return rms_norm(x, weight, eps); }

}  // namespace mg::nn
