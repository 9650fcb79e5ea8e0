#include "nn/conv1d.h"

#include <cmath>

#include "nn/init.h"
#include "ops/conv1d.h"
#include "tensor/factory.h"

namespace mg::nn {

CausalConv1d::CausalConv1d(int64_t channels, int64_t kernel_size, Generator& gen, bool bias, DType dtype)
    : UnaryModule("CausalConv1d"), channels(channels), kernel_size(kernel_size) {
  MG_CHECK(channels > 0 && kernel_size > 0, "CausalConv1d: channels and kernel_size must be positive, got ", channels,
           " and ", kernel_size);
  weight = register_parameter("weight", empty({channels, 1, kernel_size}, {.dtype = dtype}));
  init::kaiming_uniform_(weight, gen);
  if (bias) {
    this->bias = register_parameter("bias", empty({channels}, {.dtype = dtype}));
    const double bound = 1.0 / std::sqrt(static_cast<double>(kernel_size));
    init::uniform_(this->bias, -bound, bound, gen);
  }
}

Tensor CausalConv1d::forward(const Tensor& x) {
  MG_CHECK(x.defined() && x.dim() == 3 && x.size(1) == channels, "CausalConv1d: expected input (B, ", channels,
           ", L), got ", x.defined() ? x.shape() : Shape{});
  // weight (C, 1, K) viewed as the op's (C, K); the view is differentiable, so weight gets grads.
  return causal_conv1d(x, weight.view({channels, kernel_size}), bias);
}

}  // namespace mg::nn
