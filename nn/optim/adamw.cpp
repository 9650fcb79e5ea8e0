#include "nn/optim/adamw.h"

#include <cmath>
#include <map>

#include "cuda/kernels.h"

#include "ops/cpu/parallel.h"

namespace mg::optim {

namespace {

// The update of one parameter, in T, with the same operation order as PyTorch's kernels
// (mul_, add_(alpha), addcmul_(value), sqrt / c + eps, addcdiv_(value)).
template <class T>
void adamw_update_cpu(T* p, const T* g, T* m, T* v, int64_t n, double decay_factor, double beta1, double beta2,
                      double eps, double step_size, double bias_correction2_sqrt) {
  const T decay = static_cast<T>(decay_factor), b1 = static_cast<T>(beta1), b2 = static_cast<T>(beta2);
  const T one_minus_b1 = static_cast<T>(1 - beta1), one_minus_b2 = static_cast<T>(1 - beta2);
  const T e = static_cast<T>(eps), neg_step = static_cast<T>(-step_size), bc2 = static_cast<T>(bias_correction2_sqrt);
  parallel_for(0, n, 1 << 14, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      p[i] = p[i] * decay;
      m[i] = m[i] * b1 + one_minus_b1 * g[i];
      v[i] = v[i] * b2 + one_minus_b2 * g[i] * g[i];
      const T denom = std::sqrt(v[i]) / bc2 + e;
      p[i] = p[i] + neg_step * (m[i] / denom);
    }
  });
}

std::vector<ParamGroup> one_group(const nn::NamedTensors& params, double lr, double weight_decay) {
  return {ParamGroup{params, lr, weight_decay}};
}

}  // namespace

AdamW::AdamW(std::vector<ParamGroup> groups, AdamWOptions options)
    : Optimizer("AdamW", std::move(groups), {"exp_avg", "exp_avg_sq"}), options(options) {
  MG_CHECK(options.beta1 >= 0 && options.beta1 < 1 && options.beta2 >= 0 && options.beta2 < 1,
           "AdamW: betas must be in [0, 1), got (", options.beta1, ", ", options.beta2, ")");
  MG_CHECK(options.eps >= 0, "AdamW: eps must be non-negative, got ", options.eps);
}

AdamW::AdamW(const nn::NamedTensors& params, double lr, double weight_decay, AdamWOptions options)
    : AdamW(one_group(params, lr, weight_decay), options) {}

void AdamW::update(Tensor& param, const Tensor& grad, ParamState& state, const ParamGroup& group) {
  const Scalars k = scalars(state, group);
  dispatch_floating(param.dtype(), "AdamW", [&]<class T>() {
    adamw_update_cpu<T>(param.data<T>(), grad.data<T>(), state.slots[0].data<T>(), state.slots[1].data<T>(),
                        param.numel(), k.decay_factor, options.beta1, options.beta2, options.eps, k.step_size,
                        k.bias_correction2_sqrt);
  });
}

AdamW::Scalars AdamW::scalars(const ParamState& state, const ParamGroup& group) const {
  const double t = static_cast<double>(state.step);
  const double bias_correction1 = 1 - std::pow(options.beta1, t);
  const double bias_correction2 = 1 - std::pow(options.beta2, t);
  return {1 - group.lr * group.weight_decay, group.lr / bias_correction1, std::sqrt(bias_correction2)};
}

void AdamW::update_all(std::vector<Update>& updates) {
  // GPU parameters by (device, dtype): each such set is one launch over all its tensors.
  std::map<std::pair<int, DType>, std::vector<cuda::AdamWTensor>> launches;
  for (Update& u : updates) {
    if (u.param.device().is_cpu()) {
      update(u.param, u.grad, *u.state, *u.group);
      continue;
    }
    const Scalars k = scalars(*u.state, *u.group);
    launches[{u.param.device().index, u.param.dtype()}].push_back(
        {u.param.raw_data(), u.grad.raw_data(), u.state->slots[0].raw_data(), u.state->slots[1].raw_data(),
         u.param.numel(), k.decay_factor, k.step_size, k.bias_correction2_sqrt});
  }
  for ([[maybe_unused]] const auto& [where, tensors] : launches)  // unused without CUDA
    MG_CUDA_DISPATCH(cuda::adamw_step(where.second, tensors, options.beta1, options.beta2, options.eps, where.first));
}

}  // namespace mg::optim
