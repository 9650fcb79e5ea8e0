// causal_conv1d: Mamba's depthwise convolution along the sequence (see ops/conv1d.h).
//   forward:  out[b, c, t] = bias[c] + sum_k weight[c, k] * x[b, c, t - (K - 1) + k]
//   backward: dx[b, c, s]   = sum_k weight[c, k] * dout[b, c, s + (K - 1) - k]
//             dweight[c, k] = sum_{b, t} dout[b, c, t] * x[b, c, t - (K - 1) + k]
//             dbias[c]      = sum_{b, t} dout[b, c, t]
// The kernels (ops/cpu/conv1d.cpp) read contiguous (B, C, L) data; the model passes x as a
// transposed view of (B, L, C) activations, which is copied to contiguous here first.
#include "ops/conv1d.h"

#include "autograd/function.h"
#include "cuda/kernels.h"
#include "ops/check.h"
#include "ops/cpu/conv1d.h"
#include "ops/view.h"
#include "tensor/factory.h"

namespace mg {

namespace {

cpu::Conv1dSizes sizes_of(const Tensor& x, const Tensor& weight) {
  return {x.size(0), x.size(1), x.size(2), weight.size(1)};
}

struct CausalConv1dBackward : Node {
  Tensor x;       // saved: (B, C, L) contiguous, for dweight
  Tensor weight;  // saved: (C, K) contiguous, for dx
  bool has_bias = false;

  std::string name() const override { return "CausalConv1dBackward"; }
  void release_saved() override { x = weight = Tensor(); }

  TensorList backward(const TensorList& grads) override {
    Tensor dout = contiguous(grads[0]);  // (B, C, L)
    bool need_x = next_edges[0].node != nullptr, need_weight = next_edges[1].node != nullptr;
    bool need_bias = has_bias && next_edges[2].node != nullptr;
    Tensor dx = need_x ? empty_like(x) : Tensor();                    // (B, C, L)
    Tensor dweight = need_weight ? empty_like(weight) : Tensor();     // (C, K)
    Tensor dbias = need_bias ? empty({weight.size(0)}, {.dtype = x.dtype(), .device = x.device()}) : Tensor();  // (C)
    if (x.device().is_cuda()) {
      MG_CUDA_DISPATCH(cuda::causal_conv1d_backward(dx, dweight, dbias, dout, x, weight));
      return {dx, dweight, dbias};
    }
    dispatch_floating(x.dtype(), "causal_conv1d", [&]<class T>() {
      cpu::causal_conv1d_backward_cpu<T>(need_x ? dx.data<T>() : nullptr, need_weight ? dweight.data<T>() : nullptr,
                                         need_bias ? dbias.data<T>() : nullptr, dout.data<T>(), x.data<T>(),
                                         weight.data<T>(), sizes_of(x, weight));
    });
    return {dx, dweight, dbias};
  }
};

void check_conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_floating_inputs("causal_conv1d", {x, weight, bias});
  MG_CHECK(x.dim() == 3, "causal_conv1d: expected x (B, C, L), got shape ", x.shape());
  MG_CHECK(weight.dim() == 2 && weight.size(0) == x.size(1) && weight.size(1) >= 1,
           "causal_conv1d: expected weight (C, K) with C = ", x.size(1), " and K >= 1 for x ", x.shape(),
           ", got shape ", weight.shape());
  MG_CHECK(!bias.defined() || (bias.dim() == 1 && bias.size(0) == x.size(1)), "causal_conv1d: expected bias (",
           x.size(1), ") for x ", x.shape(), ", got shape ", bias.shape());
}

}  // namespace

Tensor causal_conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_conv1d(x, weight, bias);
  Tensor x_c, weight_c, out;
  {
    NoGradGuard no_grad;
    x_c = contiguous(x.detach());            // (B, C, L)
    weight_c = contiguous(weight.detach());  // (C, K)
    Tensor bias_c = bias.defined() ? contiguous(bias.detach()) : Tensor();  // (C)
    out = empty(x.shape(), {.dtype = x.dtype(), .device = x.device()});  // (B, C, L)
    if (x.device().is_cuda()) {
      MG_CUDA_DISPATCH(cuda::causal_conv1d_forward(out, x_c, weight_c, bias_c));
    } else {
      dispatch_floating(x.dtype(), "causal_conv1d", [&]<class T>() {
        cpu::causal_conv1d_forward_cpu<T>(out.data<T>(), x_c.data<T>(), weight_c.data<T>(),
                                          bias_c.defined() ? bias_c.data<T>() : nullptr, sizes_of(x, weight));
      });
    }
  }
  if (needs_grad({x, weight, bias})) {
    auto node = std::make_shared<CausalConv1dBackward>();
    node->x = x_c;
    node->weight = weight_c;
    node->has_bias = bias.defined();
    connect(node, {x, weight, bias}, {out});
  }
  return out;
}

}  // namespace mg
