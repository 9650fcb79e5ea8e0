#include "nn/optim/sgd.h"

#include "ops/binary.h"
#include "ops/cpu/parallel.h"

namespace mg::optim {

namespace {

template <class T>
void sgd_update_cpu(T* p, const T* g, T* buf, int64_t n, double lr, double weight_decay, const SGDOptions& o,
                    bool first_step) {
  const T wd = static_cast<T>(weight_decay), mom = static_cast<T>(o.momentum);
  const T keep = static_cast<T>(1 - o.dampening), neg_lr = static_cast<T>(-lr);
  parallel_for(0, n, 1 << 14, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      T d = weight_decay != 0 ? g[i] + wd * p[i] : g[i];
      if (o.momentum != 0) {
        buf[i] = first_step ? d : buf[i] * mom + keep * d;
        d = o.nesterov ? d + mom * buf[i] : buf[i];
      }
      p[i] = p[i] + neg_lr * d;
    }
  });
}

}  // namespace

SGD::SGD(std::vector<ParamGroup> groups, SGDOptions options)
    : Optimizer("SGD", std::move(groups),
                options.momentum != 0 ? std::vector<std::string>{"momentum_buffer"} : std::vector<std::string>{}),
      options(options) {
  MG_CHECK(options.momentum >= 0 && options.dampening >= 0, "SGD: momentum and dampening must be non-negative, got ",
           options.momentum, " and ", options.dampening);
  MG_CHECK(!options.nesterov || (options.momentum > 0 && options.dampening == 0),
           "SGD: nesterov momentum needs momentum > 0 and dampening 0");
}

SGD::SGD(const nn::NamedTensors& params, double lr, SGDOptions options, double weight_decay)
    : SGD(std::vector<ParamGroup>{ParamGroup{params, lr, weight_decay}}, options) {}

void SGD::update(Tensor& param, const Tensor& grad, ParamState& state, const ParamGroup& group) {
  if (param.device().is_cuda()) {  // the same steps as the CPU loop, as in-place ops on the GPU
    Tensor d = group.weight_decay != 0 ? add(grad, mul(param, group.weight_decay)) : grad;
    if (options.momentum != 0) {
      Tensor& buf = state.slots[0];
      if (state.step == 1) {
        copy_inplace(buf, d);
      } else {
        mul_inplace(buf, options.momentum);
        add_inplace(buf, d, 1 - options.dampening);
      }
      d = options.nesterov ? add(d, mul(buf, options.momentum)) : buf;
    }
    add_inplace(param, d, -group.lr);
    return;
  }
  dispatch_floating(param.dtype(), "SGD", [&]<class T>() {
    T* buf = state.slots.empty() ? nullptr : state.slots[0].data<T>();
    sgd_update_cpu<T>(param.data<T>(), grad.data<T>(), buf, param.numel(), group.lr, group.weight_decay, options,
                      state.step == 1);
  });
}

}  // namespace mg::optim
