#pragma once
// AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization"), step for step as
// torch.optim.AdamW (amsgrad off). Per parameter p with gradient g, at step t (from 1):
//   p   <- p * (1 - lr * weight_decay)                 decoupled decay, before the Adam step
//   m   <- beta1 * m + (1 - beta1) * g                 exp_avg
//   v   <- beta2 * v + (1 - beta2) * g * g             exp_avg_sq
//   p   <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// lr and weight_decay come from the parameter's group.
#include "nn/optim/optimizer.h"

namespace mg::optim {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
};

class AdamW : public Optimizer {
 public:
  AdamW(std::vector<ParamGroup> groups, AdamWOptions options = {});
  // One group: every parameter with the same lr and weight_decay.
  AdamW(const nn::NamedTensors& params, double lr, double weight_decay = 0.01, AdamWOptions options = {});

  const AdamWOptions options;

 protected:
  void update(Tensor& param, const Tensor& grad, ParamState& state, const ParamGroup& group) override;
  // CPU parameters one by one; GPU parameters all in one launch per device and dtype.
  void update_all(std::vector<Update>& updates) override;

 private:
  // The per-parameter constants of step t: 1 - lr wd, lr / (1 - beta1^t), sqrt(1 - beta2^t).
  struct Scalars {
    double decay_factor, step_size, bias_correction2_sqrt;
  };
  Scalars scalars(const ParamState& state, const ParamGroup& group) const;
};

}  // namespace mg::optim
