// dropout: out = x * mask, mask[i] = (u_i >= p) / (1 - p) with u_i uniform in [0, 1) from the
// caller's generator.
//   forward:  builds the scaled mask on the CPU (one draw per element, row-major), multiplies
//   backward: d/dx (x * mask) = mask, so dx = dout * mask (the saved mask)
#include "ops/dropout.h"

#include "autograd/function.h"
#include "ops/binary.h"
#include "ops/check.h"
#include "ops/view.h"
#include "tensor/factory.h"

namespace mg {

namespace {

struct DropoutBackward : Node {
  Tensor mask;  // saved: (x.shape) with values 0 or 1 / (1 - p), on x's device
  std::string name() const override { return "DropoutBackward"; }
  void release_saved() override { mask = Tensor(); }
  TensorList backward(const TensorList& grads) override { return {mul(grads[0], mask)}; }
};

// (shape) with 0 where dropped and 1 / (1 - p) where kept.
Tensor dropout_mask(const Shape& shape, double p, Generator& gen, DType dtype) {
  Tensor mask = empty(shape, {.dtype = dtype});
  const double scale = p < 1.0 ? 1.0 / (1.0 - p) : 0.0;
  dispatch_floating(dtype, "dropout", [&]<class T>() {
    T* m = mask.data<T>();
    for (int64_t i = 0; i < mask.numel(); ++i) m[i] = gen.next_double() >= p ? static_cast<T>(scale) : T(0);
  });
  return mask;
}

}  // namespace

Tensor dropout(const Tensor& x, double p, Generator& gen, bool training) {
  check_floating("dropout", x);
  MG_CHECK(p >= 0.0 && p <= 1.0, "dropout: probability must be in [0, 1], got ", p, " (input ", x.shape(), ")");
  if (!training || p == 0.0) return x;
  Tensor mask = to_device(dropout_mask(x.shape(), p, gen, x.dtype()), x.device());
  Tensor out;
  {
    NoGradGuard no_grad;
    out = mul(x, mask);
  }
  if (needs_grad({x})) {
    auto node = std::make_shared<DropoutBackward>();
    node->mask = mask;
    connect(node, {x}, {out});
  }
  return out;
}

}  // namespace mg
