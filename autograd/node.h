#pragma once
// A backward Node (grad_fn) of the define-by-run graph.
//
// An op that needs gradients creates one Node, which saves what the backward needs (saved tensors
// are detached: data only, so a saved output does not keep itself alive through its own grad_fn),
// and records one Edge per differentiable input: where that input's gradient must be sent.
// backward() maps gradients of the node's outputs to gradients of its inputs, one per edge (an
// undefined Tensor means "zero" or "not needed"). The engine calls release_saved() after backward
// unless the graph is retained; a second backward through the node then throws.
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace mg {

struct Edge {
  std::shared_ptr<Node> node;  // null: the input needs no gradient
  uint32_t input_nr = 0;        // which output of `node` the input was
};

class Node {
 public:
  Node();
  virtual ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  virtual std::string name() const = 0;
  // grad_outputs: one per output (undefined where no gradient reached it).
  // Returns one gradient per next edge, shaped like that input (undefined = zero).
  virtual TensorList backward(const TensorList& grad_outputs) = 0;
  // Frees saved tensors. Overrides must reset every tensor they saved.
  virtual void release_saved() {}

  std::vector<Edge> next_edges;
  uint32_t num_outputs = 1;
  bool saved_released = false;  // set by the engine after release_saved()
  // Shape/dtype/device of each input, so the engine can check what backward returns.
  std::vector<Shape> input_shapes;
};

// Accumulates an incoming gradient into a leaf tensor's .grad().
class AccumulateGrad : public Node {
 public:
  explicit AccumulateGrad(std::shared_ptr<TensorImpl> leaf) : leaf_(std::move(leaf)) {}
  std::string name() const override { return "AccumulateGrad"; }
  TensorList backward(const TensorList& grad_outputs) override;
  const std::shared_ptr<TensorImpl>& leaf() const { return leaf_; }

 private:
  std::shared_ptr<TensorImpl> leaf_;
};

int64_t live_node_count();

}  // namespace mg
