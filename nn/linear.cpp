#include "nn/linear.h"

#include <cmath>

#include "nn/init.h"
#include "ops/matmul.h"
#include "tensor/factory.h"

namespace mg::nn {

Linear::Linear(int64_t in_features, int64_t out_features, Generator& gen, bool bias, DType dtype)
    : UnaryModule("Linear"), in_features(in_features), out_features(out_features) {
  MG_CHECK(in_features > 0 && out_features > 0, "Linear: in_features and out_features must be positive, got ",
           in_features, " and ", out_features);
  weight = register_parameter("weight", empty({out_features, in_features}, {.dtype = dtype}));
  init::kaiming_uniform_(weight, gen);
  if (bias) {
    this->bias = register_parameter("bias", empty({out_features}, {.dtype = dtype}));
    const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
    init::uniform_(this->bias, -bound, bound, gen);
  }
}

Tensor Linear::forward(const Tensor& x) {
  MG_CHECK(x.defined() && x.dim() >= 1 && x.size(-1) == in_features, "Linear: expected input (..., ", in_features,
           "), got ", x.defined() ? x.shape() : Shape{});
  return linear(x, weight, bias);
}

}  // namespace mg::nn
