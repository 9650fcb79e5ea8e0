// discretize_zoh, discretize_simplified: the forward, the backward Node and the dispatch.
// The kernels and the scalar math (exprel and its series near 0) are in ops/cpu/discretize.{h,cpp}
// and cuda/discretize.cu.
#include "ops/discretize.h"

#include <algorithm>

#include "autograd/function.h"
#include "cuda/kernels.h"
#include "ops/binary.h"
#include "ops/check.h"
#include "ops/cpu/discretize.h"
#include "tensor/factory.h"

namespace mg {

namespace {

const char* op_name(bool exact) { return exact ? "discretize_zoh" : "discretize_simplified"; }

// The NumPy broadcast of the three input shapes; throws naming the op and all three.
Shape broadcast_inputs(const char* op, const Tensor& delta, const Tensor& A, const Tensor& B) {
  int64_t ndim = std::max({delta.dim(), A.dim(), B.dim()});
  Shape out(ndim, 1);
  for (const Tensor* t : {&delta, &A, &B}) {
    for (int64_t i = 0; i < t->dim(); ++i) {
      int64_t& size = out[ndim - t->dim() + i];
      int64_t s = t->size(i);
      MG_CHECK(s == size || s == 1 || size == 1, op, ": shapes do not broadcast: delta ", delta.shape(), ", A ",
               A.shape(), ", B ", B.shape());
      if (size == 1) size = s;
    }
  }
  return out;
}

void accumulate(Tensor& total, const Tensor& part) { total = total.defined() ? add(total, part) : part; }

// Gradients of (A_bar, B_bar) w.r.t. (delta, A, B). The per-element math is beside the kernels
// in ops/cpu/discretize.cpp:
//   A_bar = exp(delta A):      ddelta += dA_bar A A_bar,   dA += dA_bar delta A_bar
//   B_bar (exact, x = delta A): ddelta += dB_bar B exp(x), dA += dB_bar B delta^2 exprel'(x),
//                               dB += dB_bar delta exprel(x)
//   B_bar (simplified):         ddelta += dB_bar B,        dB += dB_bar delta
// Each is computed in its output's broadcast shape, then summed down to the input's shape.
struct DiscretizeBackward : Node {
  bool exact = true;
  Tensor delta, A, B;  // saved inputs; the exponentials are recomputed (cheaper than storing them)

  std::string name() const override { return exact ? "DiscretizeZohBackward" : "DiscretizeSimplifiedBackward"; }
  void release_saved() override { delta = A = B = Tensor(); }

  TensorList backward(const TensorList& grads) override {
    const Tensor& dA_bar = grads[0];  // broadcast(delta, A), or undefined
    const Tensor& dB_bar = grads[1];  // broadcast(delta, A, B), or undefined
    Tensor ddelta, dA, dB;
    TensorOptions options{.dtype = delta.dtype(), .device = delta.device()};
    const bool gpu = delta.device().is_cuda();
    if (dA_bar.defined()) {
      Tensor dd = empty(dA_bar.shape(), options), da = empty(dA_bar.shape(), options);
      if (gpu) MG_CUDA_DISPATCH(cuda::discretize_a_backward(dd, da, dA_bar, delta, A));
      else dispatch_floating(delta.dtype(), op_name(exact), [&]<class T>() {
        cpu::discretize_a_backward_cpu<T>(dd, da, dA_bar, delta, A);
      });
      accumulate(ddelta, sum_to_shape(dd, delta.shape()));
      accumulate(dA, sum_to_shape(da, A.shape()));
    }
    if (dB_bar.defined()) {
      Tensor dd = empty(dB_bar.shape(), options), db = empty(dB_bar.shape(), options);
      Tensor da = exact ? empty(dB_bar.shape(), options) : Tensor();  // B_bar = delta B does not depend on A
      if (gpu) MG_CUDA_DISPATCH(cuda::discretize_b_backward(dd, da, db, dB_bar, delta, A, B, exact));
      else dispatch_floating(delta.dtype(), op_name(exact), [&]<class T>() {
        cpu::discretize_b_backward_cpu<T>(dd, da, db, dB_bar, delta, A, B, exact);
      });
      accumulate(ddelta, sum_to_shape(dd, delta.shape()));
      if (exact) accumulate(dA, sum_to_shape(da, A.shape()));
      accumulate(dB, sum_to_shape(db, B.shape()));
    }
    return {ddelta, dA, dB};
  }
};

// delta: broadcasts with A and B; see ops/discretize.h for the shapes of the outputs.
DiscretizedSSM discretize(bool exact, const Tensor& delta, const Tensor& A, const Tensor& B) {
  const char* op = op_name(exact);
  check_floating_inputs(op, {delta, A, B});
  Shape b_shape = broadcast_inputs(op, delta, A, B);
  Shape a_shape = broadcast_shapes(delta.shape(), A.shape(), op);  // cannot fail once b_shape exists
  TensorOptions options{.dtype = delta.dtype(), .device = delta.device()};
  DiscretizedSSM out{empty(a_shape, options), empty(b_shape, options)};
  if (delta.device().is_cuda()) {
    MG_CUDA_DISPATCH(cuda::discretize_a_forward(out.A_bar, delta, A));
    MG_CUDA_DISPATCH(cuda::discretize_b_forward(out.B_bar, delta, A, B, exact));
  } else {
    dispatch_floating(delta.dtype(), op, [&]<class T>() {
      cpu::discretize_a_forward_cpu<T>(out.A_bar, delta, A);
      cpu::discretize_b_forward_cpu<T>(out.B_bar, delta, A, B, exact);
    });
  }
  if (needs_grad({delta, A, B})) {
    auto node = std::make_shared<DiscretizeBackward>();
    node->exact = exact;
    node->delta = delta.detach();
    node->A = A.detach();
    node->B = B.detach();
    connect(node, {delta, A, B}, {out.A_bar, out.B_bar});
  }
  return out;
}

}  // namespace

DiscretizedSSM discretize_zoh(const Tensor& delta, const Tensor& A, const Tensor& B) {
  return discretize(/*exact=*/true, delta, A, B);
}

DiscretizedSSM discretize_simplified(const Tensor& delta, const Tensor& A, const Tensor& B) {
  return discretize(/*exact=*/false, delta, A, B);
}

}  // namespace mg
