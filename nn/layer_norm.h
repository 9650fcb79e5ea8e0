#pragma once
#include "nn/module.h"

namespace mg::nn {

// LayerNorm over the last dimension: x (..., dim) -> (x - mean) * rsqrt(var + eps) * weight + bias.
// Parameters: weight (dim) init ones, bias (dim) init zeros (as torch.nn.LayerNorm).
class LayerNorm : public UnaryModule {
 public:
  explicit LayerNorm(int64_t dim, double eps = 1e-5, DType dtype = DType::Float32);
  Tensor forward(const Tensor& x) override;

  const int64_t dim;
  const double eps;
  Tensor weight;  // (dim)
  Tensor bias;    // (dim)
};

}  // namespace mg::nn
