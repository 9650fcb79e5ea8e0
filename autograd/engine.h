#pragma once
// The backward engine: counts dependencies, walks the graph once in topological order (Kahn),
// sums gradients that meet at a node, and releases each node's saved tensors after it ran.
#include "tensor/tensor.h"

namespace mg {

// Backpropagates grad_outputs[i] from outputs[i] into every leaf that requires grad.
void run_backward(const TensorList& outputs, const TensorList& grad_outputs, bool retain_graph);

}  // namespace mg
