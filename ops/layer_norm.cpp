// layer_norm: (x - mean) * rsqrt(var + eps) * weight + bias over the last dimension, fused.
//   forward:  two passes per row; saves x, mean and rstd = rsqrt(var + eps) per row (rows,)
//   backward: dx = rstd * (g w - mean(g w) - xhat * mean(g w xhat)),  xhat = (x - mean) * rstd;
//             dweight = sum over rows of g * xhat, dbias = sum over rows of g (derivation beside the
//             kernel, in ops/cpu/layer_norm.cpp; the GPU's twin is cuda/layer_norm.cu)
#include "ops/layer_norm.h"

#include "autograd/function.h"
#include "cuda/kernels.h"
#include "ops/check.h"
#include "ops/cpu/layer_norm.h"
#include "ops/view.h"
#include "tensor/factory.h"

namespace mg {

namespace {

struct LayerNormBackward : Node {
  Tensor x;             // saved: (rows, D) contiguous
  Tensor weight;        // saved: (D) contiguous, or undefined
  Tensor mean, rstd;    // saved: (rows) each
  Shape input_shape;
  bool weight_needs_grad = false, bias_needs_grad = false;

  std::string name() const override { return "LayerNormBackward"; }
  void release_saved() override { x = weight = mean = rstd = Tensor(); }

  TensorList backward(const TensorList& grads) override {
    const int64_t rows = x.size(0), dim = x.size(1);
    Tensor dout = contiguous(grads[0]).reshape({rows, dim});
    const TensorOptions options{.dtype = x.dtype(), .device = x.device()};
    Tensor dx = empty({rows, dim}, options);
    Tensor dweight = weight_needs_grad ? empty({dim}, options) : Tensor();
    Tensor dbias = bias_needs_grad ? empty({dim}, options) : Tensor();
    if (x.device().is_cuda()) {
      MG_CUDA_DISPATCH(cuda::layer_norm_backward(dx, dweight, dbias, dout, x, weight, mean, rstd));
      return {dx.view(input_shape), dweight, dbias};
    }
    dispatch_floating(x.dtype(), "layer_norm", [&]<class T>() {
      cpu::layer_norm_backward_cpu<T>(dx.data<T>(), dweight.defined() ? dweight.data<T>() : nullptr,
                                      dbias.defined() ? dbias.data<T>() : nullptr, dout.data<T>(), x.data<T>(),
                                      weight.defined() ? weight.data<T>() : nullptr, mean.data<T>(), rstd.data<T>(),
                                      rows, dim);
    });
    return {dx.view(input_shape), dweight, dbias};
  }
};

void check_parameter(const char* name, const Tensor& p, const Tensor& x) {
  MG_CHECK(!p.defined() || (p.dim() == 1 && p.size(0) == x.size(-1)), "layer_norm: ", name, " of shape ", p.shape(),
           " does not match the last dimension of input ", x.shape());
}

}  // namespace

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  check_floating_inputs("layer_norm", {x, weight, bias});
  MG_CHECK(x.dim() >= 1, "layer_norm: expected an input with at least one dimension, got shape ", x.shape());
  check_parameter("weight", weight, x);
  check_parameter("bias", bias, x);
  MG_CHECK(eps >= 0, "layer_norm: eps must be non-negative, got ", eps);

  // x: (..., D) -> rows: (rows, D)
  const int64_t dim = x.size(-1), rows = dim == 0 ? 0 : x.numel() / dim;
  Tensor rows_x = contiguous(x.detach()).reshape({rows, dim});
  Tensor w = weight.defined() ? contiguous(weight.detach()) : Tensor();
  Tensor b = bias.defined() ? contiguous(bias.detach()) : Tensor();
  const TensorOptions options{.dtype = x.dtype(), .device = x.device()};
  Tensor out = empty(x.shape(), options);
  Tensor mean = empty({rows}, options), rstd = empty({rows}, options);
  if (x.device().is_cuda()) {
    MG_CUDA_DISPATCH(cuda::layer_norm_forward(out.view({rows, dim}), mean, rstd, rows_x, w, b, eps));
  } else {
    dispatch_floating(x.dtype(), "layer_norm", [&]<class T>() {
      cpu::layer_norm_forward_cpu<T>(out.data<T>(), mean.data<T>(), rstd.data<T>(), rows_x.data<T>(),
                                     w.defined() ? w.data<T>() : nullptr, b.defined() ? b.data<T>() : nullptr, rows,
                                     dim, eps);
    });
  }

  if (needs_grad({x, weight, bias})) {
    auto node = std::make_shared<LayerNormBackward>();
    node->x = rows_x;
    node->weight = w;
    node->mean = mean;
    node->rstd = rstd;
    node->input_shape = x.shape();
    node->weight_needs_grad = weight.defined() && weight.requires_grad();
    node->bias_needs_grad = bias.defined() && bias.requires_grad();
    connect(node, {x, weight, bias}, {out});
  }
  return out;
}

}  // namespace mg
