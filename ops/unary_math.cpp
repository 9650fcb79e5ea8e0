// Elementwise unary ops. Each op is one struct: its forward and its backward side by side, as
// scalar math; unary_op() below adds the loops, the checks and the autograd node.
//   forward<T>(x)          -> y
//   backward<T>(g, x, y)   -> dL/dx given g = dL/dy (reads x, y, or both; see kSaves)
#include <cmath>

#include "autograd/function.h"
#include "ops/check.h"
#include "ops/cpu/unary.h"
#include "ops/unary.h"
#include "tensor/factory.h"

namespace mg {

namespace {

enum Saves { kSavesInput = 1, kSavesOutput = 2 };

struct NegOp {
  static constexpr const char* name = "neg";
  static constexpr int kSaves = 0;
  template <class T> T forward(T x) const { return -x; }
  template <class T> T backward(T g, T, T) const { return -g; }  // d/dx (-x) = -1
};

struct ExpOp {
  static constexpr const char* name = "exp";
  static constexpr int kSaves = kSavesOutput;
  template <class T> T forward(T x) const { return std::exp(x); }
  template <class T> T backward(T g, T, T y) const { return g * y; }  // d/dx exp(x) = exp(x) = y
};

template <class Op>
struct UnaryBackward : Node {
  Op op;
  Tensor x, out;  // saved according to Op::kSaves
  std::string name() const override { return str(Op::name, "Backward"); }
  void release_saved() override { x = out = Tensor(); }
  TensorList backward(const TensorList& grads) override {
    const Tensor& g = grads[0];
    Tensor dx = empty_like(g);
    MG_CHECK(g.device().is_cpu(), Op::name, ": backward on ", g.device(), " is not available yet (CPU only)");
    dispatch_floating(g.dtype(), Op::name, [&]<class T>() { cpu::unary_backward_cpu<Op, T>(dx, g, x, out, op); });
    return {dx};
  }
};

template <class Op>
Tensor unary_op(const Tensor& x, Op op = {}) {
  check_floating(Op::name, x);
  MG_CHECK(x.device().is_cpu(), Op::name, ": not available on ", x.device(), " yet (CPU only); input ", x.shape());
  Tensor out = empty(x.shape(), {.dtype = x.dtype(), .device = x.device()});
  dispatch_floating(x.dtype(), Op::name, [&]<class T>() { cpu::unary_forward_cpu<Op, T>(out, x, op); });
  if (needs_grad({x})) {
    auto node = std::make_shared<UnaryBackward<Op>>();
    node->op = op;
    if (Op::kSaves & kSavesInput) node->x = x.detach();
    if (Op::kSaves & kSavesOutput) node->out = out.detach();
    connect(node, {x}, {out});
  }
  return out;
}

}  // namespace

Tensor neg(const Tensor& x) { return unary_op<NegOp>(x); }
Tensor exp(const Tensor& x) { return unary_op<ExpOp>(x); }

}  // namespace mg
