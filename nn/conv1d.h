#pragma once
#include "nn/module.h"
#include "tensor/random.h"

namespace mg::nn {

// Causal depthwise 1-D convolution along the sequence (Mamba's conv1d): x (B, C, L) -> (B, C, L),
// each channel filtered by its own kernel of width K, seeing only the current and K - 1 earlier
// steps. The weight has PyTorch's depthwise nn.Conv1d(C, C, K, groups=C) shape (C, 1, K), so
// checkpoints match; init as PyTorch's: kaiming-uniform (a = sqrt(5)) and bias uniform in
// +-1/sqrt(K) (fan_in = K).
class CausalConv1d : public UnaryModule {
 public:
  CausalConv1d(int64_t channels, int64_t kernel_size, Generator& gen, bool bias = true, DType dtype = DType::Float32);
  Tensor forward(const Tensor& x) override;  // x: (B, C, L)

  const int64_t channels, kernel_size;
  Tensor weight;  // (C, 1, K)
  Tensor bias;    // (C), or undefined
};

}  // namespace mg::nn
