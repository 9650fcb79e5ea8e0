#include "autograd/engine.h"

#include <deque>
#include <unordered_map>

#include "autograd/function.h"
#include "ops/binary.h"
#include "tensor/factory.h"

namespace mg {

namespace {

// Adds `grad` into slot `input_nr` of a node's gradient buffer (gradients that meet are summed).
void accumulate(TensorList& buffer, uint32_t input_nr, const Tensor& grad) {
  Tensor& slot = buffer[input_nr];
  slot = slot.defined() ? add(slot, grad) : grad;
}

// The one walk behind backward() and gradients(). With `captured` null, leaves accumulate into
// their .grad; otherwise no leaf is touched: the gradient reaching the leaf captured[i] is
// returned in slot i (the others' are dropped). Everything the walk writes lives in this call
// (buffers, counts, queue) or in the graph below `outputs`, so two calls on two threads over
// disjoint graphs do not share state: a leaf's AccumulateGrad node may be in both graphs, and in
// capture mode it is never run.
TensorList walk_backward(const TensorList& outputs, const TensorList& grad_outputs, bool retain_graph,
                         const TensorList* captured) {
  MG_ASSERT(outputs.size() == grad_outputs.size());
  std::unordered_map<const TensorImpl*, size_t> capture_slot;
  TensorList results;
  if (captured != nullptr) {
    results.resize(captured->size());
    for (size_t i = 0; i < captured->size(); ++i) {
      const Tensor& leaf = (*captured)[i];
      MG_CHECK(leaf.defined() && leaf.is_leaf() && leaf.requires_grad(), "gradients: input ", i,
               " must be a leaf tensor that requires grad (a parameter)");
      capture_slot.emplace(leaf.impl(), i);
    }
  }
  NoGradGuard no_grad;  // backward formulas never record a graph

  std::unordered_map<Node*, TensorList> buffers;
  std::vector<std::shared_ptr<Node>> roots;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const Tensor& out = outputs[i];
    MG_CHECK(out.requires_grad(), "backward: the tensor does not require grad and has no grad_fn");
    Tensor grad = grad_outputs[i];
    if (!grad.defined()) {
      MG_CHECK(out.numel() == 1, "backward: a gradient can be implied only for a one-element output, got shape ",
               out.shape(), "; pass grad_output");
      grad = ones_like(out);
    }
    MG_CHECK(grad.shape() == out.shape() && grad.dtype() == out.dtype() && grad.device() == out.device(),
             "backward: grad_output ", grad.shape(), " ", grad.dtype(), " on ", grad.device(),
             " does not match the output ", out.shape(), " ", out.dtype(), " on ", out.device());
    Edge edge = gradient_edge(out);
    TensorList& buffer = buffers[edge.node.get()];
    buffer.resize(edge.node->num_outputs);
    accumulate(buffer, edge.input_nr, grad);
    roots.push_back(edge.node);
  }

  // Count, for every node reachable from the roots, how many edges lead into it.
  std::unordered_map<Node*, int> dependencies;
  std::vector<Node*> stack;
  for (auto& root : roots)
    if (dependencies.emplace(root.get(), 0).second) stack.push_back(root.get());
  while (!stack.empty()) {
    Node* node = stack.back();
    stack.pop_back();
    for (const Edge& edge : node->next_edges) {
      if (!edge.node) continue;
      if (dependencies[edge.node.get()]++ == 0) stack.push_back(edge.node.get());
    }
  }

  // Kahn's algorithm: a node runs once all gradients flowing into it have arrived.
  std::deque<std::shared_ptr<Node>> ready;
  for (auto& root : roots)
    if (dependencies[root.get()] == 0) {
      ready.push_back(root);
      dependencies[root.get()] = -1;  // queued
    }
  while (!ready.empty()) {
    std::shared_ptr<Node> node = std::move(ready.front());
    ready.pop_front();
    TensorList grads_in = std::move(buffers[node.get()]);
    buffers.erase(node.get());
    grads_in.resize(node->num_outputs);
    bool any_gradient = false;
    for (const Tensor& g : grads_in) any_gradient = any_gradient || g.defined();

    // A node that no gradient reached is skipped, but its inputs' counts must still fall.
    TensorList grads_out;
    auto* accumulator = dynamic_cast<AccumulateGrad*>(node.get());
    if (any_gradient && accumulator != nullptr && captured != nullptr) {
      auto slot = capture_slot.find(accumulator->leaf().get());
      if (slot != capture_slot.end()) results[slot->second] = grads_in[0];
      continue;  // a leaf's node has no next edges
    }
    if (any_gradient) {
      bool is_accumulator = accumulator != nullptr;
      MG_CHECK(!node->saved_released, "backward: ", node->name(),
               " was already used by a backward pass and its saved tensors were freed; pass "
               "retain_graph=true to the first backward to run backward twice through a graph");
      grads_out = node->backward(grads_in);
      MG_ASSERT(is_accumulator || grads_out.size() == node->next_edges.size(), node->name(), " returned ",
                grads_out.size(), " gradients for ", node->next_edges.size(), " inputs");
      if (!retain_graph && !is_accumulator) {
        node->release_saved();
        node->saved_released = true;
      }
    }
    for (size_t i = 0; i < node->next_edges.size(); ++i) {
      const Edge& edge = node->next_edges[i];
      if (!edge.node) continue;
      TensorList& buffer = buffers[edge.node.get()];
      buffer.resize(edge.node->num_outputs);
      if (i < grads_out.size() && grads_out[i].defined()) {
        MG_ASSERT(grads_out[i].shape() == node->input_shapes[i], node->name(), " returned a gradient of shape ",
                  grads_out[i].shape(), " for input ", i, " of shape ", node->input_shapes[i]);
        accumulate(buffer, edge.input_nr, grads_out[i]);
      }
      if (--dependencies[edge.node.get()] == 0) ready.push_back(edge.node);
    }
  }
  return results;
}

}  // namespace

void run_backward(const TensorList& outputs, const TensorList& grad_outputs, bool retain_graph) {
  walk_backward(outputs, grad_outputs, retain_graph, nullptr);
}

TensorList gradients(const TensorList& outputs, const TensorList& grad_outputs, const TensorList& inputs) {
  return walk_backward(outputs, grad_outputs, false, &inputs);
}

// ---- Tensor's autograd members

void Tensor::backward(const Tensor& grad_output, bool retain_graph) const {
  run_backward({*this}, {grad_output}, retain_graph);
}

Tensor& Tensor::requires_grad_(bool requires_grad) {
  MG_CHECK(is_leaf(), "requires_grad_: only a leaf tensor (one not produced by an op) can change requires_grad; "
                      "use detach() first");
  MG_CHECK(!requires_grad || is_floating(dtype()), "requires_grad_: only floating-point tensors can require "
                                                   "gradients, got ", dtype());
  impl()->requires_grad = requires_grad;
  return *this;
}

void Tensor::set_grad(const Tensor& grad) {
  if (!grad.defined()) {
    impl()->grad.reset();
    return;
  }
  MG_CHECK(grad.shape() == shape() && grad.dtype() == dtype() && grad.device() == device(), "set_grad: gradient ",
           grad.shape(), " ", grad.dtype(), " on ", grad.device(), " does not match the tensor ", shape(), " ",
           dtype(), " on ", device());
  impl()->grad = grad.impl_ptr();
}

Tensor Tensor::detach() const { return make_view(*this, shape(), strides(), offset()); }

}  // namespace mg
