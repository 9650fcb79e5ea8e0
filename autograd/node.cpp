#include "autograd/node.h"

#include <atomic>

#include "ops/binary.h"

namespace mg {

namespace {
std::atomic<int64_t> g_live_nodes{0};
}

Node::Node() { ++g_live_nodes; }
Node::~Node() { --g_live_nodes; }
int64_t live_node_count() { return g_live_nodes.load(); }

TensorList AccumulateGrad::backward(const TensorList& grad_outputs) {
  const Tensor& g = grad_outputs[0];
  if (!g.defined()) return {};
  MG_ASSERT(g.shape() == leaf_->sizes, "gradient of shape ", g.shape(), " for a leaf of shape ", leaf_->sizes);
  // A fresh tensor: the incoming gradient may be shared with other leaves, and optimizers and
  // clipping scale .grad in place.
  if (!leaf_->grad) leaf_->grad = g.clone().impl_ptr();
  else leaf_->grad = add(Tensor(leaf_->grad), g).impl_ptr();
  return {};
}

}  // namespace mg
