#pragma once
// Stochastic gradient descent with momentum, as torch.optim.SGD. Per parameter p, gradient g:
//   d <- g + weight_decay * p                          (L2 decay, coupled, as PyTorch's SGD)
//   b <- d at the first step, else momentum * b + (1 - dampening) * d     (momentum_buffer)
//   d <- d + momentum * b if nesterov, else b          (only when momentum != 0)
//   p <- p - lr * d
#include "nn/optim/optimizer.h"

namespace mg::optim {

struct SGDOptions {
  double momentum = 0.0;
  double dampening = 0.0;
  bool nesterov = false;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<ParamGroup> groups, SGDOptions options = {});
  SGD(const nn::NamedTensors& params, double lr, SGDOptions options = {}, double weight_decay = 0.0);

  const SGDOptions options;

 protected:
  void update(Tensor& param, const Tensor& grad, ParamState& state, const ParamGroup& group) override;
};

}  // namespace mg::optim
