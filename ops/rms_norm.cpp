// rms_norm: x * rsqrt(mean(x^2, -1) + eps) * weight over the last dimension, fused.
//   forward:  one pass per row; saves x and rstd = rsqrt(mean(x^2) + eps) per row (rows,)
//   backward: dx = rstd * (g * w - x * rstd^2 * sum(g * w * x) / D),  dweight = sum over rows of
//             g * x * rstd (the derivation is beside the kernel, in ops/cpu/rms_norm.cpp)
#include "ops/rms_norm.h"

#include "autograd/function.h"
#include "cuda/kernels.h"
#include "ops/check.h"
#include "ops/cpu/rms_norm.h"
#include "ops/view.h"
#include "tensor/factory.h"

namespace mg {

namespace {

struct RmsNormBackward : Node {
  Tensor x;       // saved: (rows, D) contiguous
  Tensor weight;  // saved: (D) contiguous, or undefined
  Tensor rstd;    // saved: (rows)
  Shape input_shape;
  bool weight_needs_grad = false;

  std::string name() const override { return "RmsNormBackward"; }
  void release_saved() override { x = weight = rstd = Tensor(); }

  TensorList backward(const TensorList& grads) override {
    const int64_t rows = x.size(0), dim = x.size(1);
    Tensor dout = contiguous(grads[0]).reshape({rows, dim});
    Tensor dx = empty({rows, dim}, {.dtype = x.dtype(), .device = x.device()});
    Tensor dweight = weight_needs_grad ? empty({dim}, {.dtype = x.dtype(), .device = x.device()}) : Tensor();
    if (x.device().is_cuda()) {
      MG_CUDA_DISPATCH(cuda::rms_norm_backward(dx, dweight, dout, x, weight, rstd));
      return {dx.view(input_shape), dweight};
    }
    dispatch_floating(x.dtype(), "rms_norm", [&]<class T>() {
      rms_norm_backward_cpu<T>(dx.data<T>(), dweight.defined() ? dweight.data<T>() : nullptr, dout.data<T>(),
                               x.data<T>(), weight.defined() ? weight.data<T>() : nullptr, rstd.data<T>(), rows, dim);
    });
    return {dx.view(input_shape), dweight};
  }
};

}  // namespace

Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps) {
  check_floating_inputs("rms_norm", {x, weight});
  MG_CHECK(x.dim() >= 1, "rms_norm: expected an input with at least one dimension, got shape ", x.shape());
  const int64_t dim = x.size(-1);
  MG_CHECK(!weight.defined() || (weight.dim() == 1 && weight.size(0) == dim), "rms_norm: weight of shape ",
           weight.defined() ? weight.shape() : Shape{}, " does not match the last dimension of input ", x.shape());
  MG_CHECK(eps >= 0, "rms_norm: eps must be non-negative, got ", eps);

  // x: (..., D) -> rows: (rows, D)
  const int64_t rows = dim == 0 ? 0 : x.numel() / dim;
  Tensor rows_x = contiguous(x.detach()).reshape({rows, dim});
  Tensor w = weight.defined() ? contiguous(weight.detach()) : Tensor();
  Tensor out = empty(x.shape(), {.dtype = x.dtype(), .device = x.device()});
  Tensor rstd = empty({rows}, {.dtype = x.dtype(), .device = x.device()});
  if (x.device().is_cuda()) {
    MG_CUDA_DISPATCH(cuda::rms_norm_forward(out.view({rows, dim}), rstd, rows_x, w, eps));
  } else {
    dispatch_floating(x.dtype(), "rms_norm", [&]<class T>() {
      rms_norm_forward_cpu<T>(out.data<T>(), rstd.data<T>(), rows_x.data<T>(), w.defined() ? w.data<T>() : nullptr,
                              rows, dim, eps);
    });
  }

  if (needs_grad({x, weight})) {
    auto node = std::make_shared<RmsNormBackward>();
    node->x = rows_x;
    node->weight = w;
    node->rstd = rstd;
    node->input_shape = x.shape();
    node->weight_needs_grad = weight.defined() && weight.requires_grad();
    connect(node, {x, weight}, {out});
  }
  return out;
}

}  // namespace mg
