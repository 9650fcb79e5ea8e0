#pragma once
// Helpers an op uses to join the graph. The pattern, in every op file:
//
//   Tensor exp(const Tensor& x) {
//     Tensor out = ...forward kernel...;
//     if (needs_grad({x})) {
//       auto node = std::make_shared<ExpBackward>();
//       node->out = out.detach();          // saved for backward: d/dx exp(x) = exp(x)
//       connect(node, {x}, {out});
//     }
//     return out;
//   }
#include <initializer_list>
#include <memory>

#include "autograd/grad_mode.h"
#include "autograd/node.h"

namespace mg {

// True when grad mode is on and any defined input requires grad.
bool needs_grad(std::initializer_list<Tensor> inputs);
bool needs_grad(const TensorList& inputs);

// Records node's edges to `inputs` (in order) and makes `outputs` its results (output i is
// output_nr i). Undefined inputs and inputs not requiring grad get an empty edge.
void connect(const std::shared_ptr<Node>& node, const TensorList& inputs, const TensorList& outputs);

// The edge through which a gradient reaches `t`: its grad_fn, or its leaf accumulator.
Edge gradient_edge(const Tensor& t);

}  // namespace mg
