#include "autograd/function.h"

#include <mutex>

namespace mg {

bool needs_grad(const TensorList& inputs) {
  if (!grad_mode_enabled()) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}
bool needs_grad(std::initializer_list<Tensor> inputs) { return needs_grad(TensorList(inputs)); }

Edge gradient_edge(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return {};
  if (t.grad_fn()) return {t.grad_fn(), t.output_nr()};
  TensorImpl* impl = t.impl();
  // Two forward passes on two threads (the training step's halves) meet at the same parameters:
  // the lookup-or-create of a leaf's node is the one write they share, so it is serialized (a
  // few hundred uncontended locks per step).
  static std::mutex accumulator_mutex;
  std::lock_guard lock(accumulator_mutex);
  std::shared_ptr<Node> accumulator = impl->grad_accumulator.lock();
  if (!accumulator) {
    accumulator = std::make_shared<AccumulateGrad>(t.impl_ptr());
    impl->grad_accumulator = accumulator;
  }
  return {accumulator, 0};
}

void connect(const std::shared_ptr<Node>& node, const TensorList& inputs, const TensorList& outputs) {
  node->next_edges.clear();
  node->input_shapes.clear();
  for (const Tensor& t : inputs) {
    node->next_edges.push_back(gradient_edge(t));
    node->input_shapes.push_back(t.defined() ? t.shape() : Shape{});
  }
  node->num_outputs = static_cast<uint32_t>(outputs.size());
  for (uint32_t i = 0; i < outputs.size(); ++i) {
    TensorImpl* impl = outputs[i].impl();
    impl->requires_grad = true;
    impl->grad_fn = node;
    impl->output_nr = i;
  }
}

}  // namespace mg
