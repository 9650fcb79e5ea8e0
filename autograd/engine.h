#pragma once
// The backward engine: counts dependencies, walks the graph once in topological order (Kahn),
// sums gradients that meet at a node, and releases each node's saved tensors after it ran.
#include "tensor/tensor.h"

namespace mg {

// Backpropagates grad_outputs[i] from outputs[i] into every leaf that requires grad.
void run_backward(const TensorList& outputs, const TensorList& grad_outputs, bool retain_graph);

// The gradients of outputs (seeded with grad_outputs, as run_backward) with respect to `inputs`,
// leaves that require grad, returned (one per input, undefined where no gradient reached it)
// instead of accumulated: no leaf's .grad changes (PyTorch's torch.autograd.grad). Frees the
// graph. Calls on different threads over different graphs may run at once, even when the graphs
// share leaves: the training step runs each half of a batch on its own thread this way
// (apps/common/train_step.h).
TensorList gradients(const TensorList& outputs, const TensorList& grad_outputs, const TensorList& inputs);

}  // namespace mg
