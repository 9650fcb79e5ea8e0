#pragma once
#include "tensor/tensor.h"

namespace mg {

Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
// Mean (over non-ignored targets) of -log_softmax(logits)[target].
// logits (N, C) or (..., C); targets int64 of shape logits.shape[:-1]. Targets equal to
// ignore_index contribute nothing; others must lie in [0, C).
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index = -100);

}  // namespace mg
