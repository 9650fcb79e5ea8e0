#pragma once
// Gradient clipping by global norm, as torch.nn.utils.clip_grad_norm_.
#include "tensor/tensor.h"

namespace mg::nn {

// The L2 norm of all gradients together, sqrt(sum over params of sum(grad^2)), computed in
// double. When it exceeds max_norm, every gradient is scaled in place by
// max_norm / (total_norm + 1e-6). Parameters without a gradient are skipped. Returns the total
// norm before clipping as a 0-d float64 tensor on the gradients' device: on a GPU nothing waits
// for it, and the decision to clip is taken there too; read it with .item<double>() when needed.
// It is NaN or Inf when a gradient holds one (the gradients are then scaled by NaN too, as in
// PyTorch, so a caller should check it).
Tensor clip_grad_norm_(const TensorList& parameters, double max_norm);

// The same total norm, without clipping.
Tensor grad_norm(const TensorList& parameters);

}  // namespace mg::nn
