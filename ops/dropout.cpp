// dropout: out = x * mask, mask[i] = (u_i >= p) / (1 - p) with u_i = dropout_uniform(seed, i)
// (ops/dropout_hash.h) and one seed drawn from the caller's generator per call.
//   forward:  builds the scaled mask on x's device (the same mask on the CPU and the GPU), multiplies
//   backward: d/dx (x * mask) = mask, so dx = dout * mask (the saved mask)
#include "ops/dropout.h"

#include "autograd/function.h"
#include "cuda/kernels.h"
#include "ops/binary.h"
#include "ops/check.h"
#include "ops/cpu/parallel.h"
#include "ops/dropout_hash.h"
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

// (shape) with 0 where dropped and 1 / (1 - p) where kept, element i decided by (seed, i) alone.
Tensor dropout_mask(const Shape& shape, double p, uint64_t seed, DType dtype, Device device) {
  Tensor mask = empty(shape, {.dtype = dtype, .device = device});
  if (device.is_cuda()) {
    MG_CUDA_DISPATCH(cuda::dropout_mask(mask, p, seed));
    return mask;
  }
  const double scale = p < 1.0 ? 1.0 / (1.0 - p) : 0.0;
  dispatch_floating(dtype, "dropout", [&]<class T>() {
    T* m = mask.data<T>();
    parallel_for(0, mask.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i)
        m[i] = dropout_keeps(seed, static_cast<uint64_t>(i), p) ? static_cast<T>(scale) : T(0);
    });
  });
  return mask;
}

}  // namespace

Tensor dropout(const Tensor& x, double p, Generator& gen, bool training) {
  check_floating("dropout", x);
  MG_CHECK(p >= 0.0 && p <= 1.0, "dropout: probability must be in [0, 1], got ", p, " (input ", x.shape(), ")");
  if (!training || p == 0.0) return x;
  Tensor mask = dropout_mask(x.shape(), p, gen.next_u64(), x.dtype(), x.device());
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
