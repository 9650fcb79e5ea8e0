#pragma once
#include "nn/module.h"

namespace mg::nn {

// RMSNorm over the last dimension: x (..., dim) -> x * rsqrt(mean(x^2, -1) + eps) * weight.
// Parameter: weight (dim), init ones (as Mamba's and Hugging Face's RMSNorm).
class RMSNorm : public UnaryModule {
 public:
  explicit RMSNorm(int64_t dim, double eps = 1e-5, DType dtype = DType::Float32);
  Tensor forward(const Tensor& x) override;

  const int64_t dim;
  const double eps;
  Tensor weight;  // (dim)
};

}  // namespace mg::nn
