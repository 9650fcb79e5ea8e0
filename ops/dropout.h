#pragma once
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace mg {

// Inverted dropout: each element is zeroed with probability p and the survivors are scaled by
// 1 / (1 - p), so the expected value is unchanged. Each call draws one number from `gen`, and the
// mask is a function of it and each element's position (ops/dropout_hash.h): the same seed gives
// the same mask on every machine, on the CPU and the GPU alike. Returns x itself when not
// training or p == 0; zeros when p == 1. Differentiable: dx = dout * mask * 1 / (1 - p).
Tensor dropout(const Tensor& x, double p, Generator& gen, bool training = true);

}  // namespace mg
