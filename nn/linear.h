#pragma once
#include "nn/module.h"
#include "tensor/random.h"

namespace mg::nn {

// y = x @ weight^T + bias:  x (..., in_features) -> (..., out_features).
// Parameters: weight (out_features, in_features), bias (out_features) when `bias`.
// Init as PyTorch's nn.Linear: weight and bias uniform in +-1/sqrt(in_features).
class Linear : public UnaryModule {
 public:
  Linear(int64_t in_features, int64_t out_features, Generator& gen, bool bias = true, DType dtype = DType::Float32);
  Tensor forward(const Tensor& x) override;

  const int64_t in_features, out_features;
  Tensor weight;  // (out_features, in_features)
  Tensor bias;    // (out_features), or undefined
};

}  // namespace mg::nn
