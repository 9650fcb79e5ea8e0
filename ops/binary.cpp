// add, sub, mul, div: broadcasting forward, and backward reduced to each input's shape.
#include "ops/binary.h"

#include "autograd/function.h"
#include "cuda/kernels.h"
#include "ops/check.h"
#include "ops/op_kinds.h"
#include "ops/cpu/loops.h"
#include "ops/reduce.h"
#include "ops/unary.h"
#include "ops/view.h"
#include "tensor/factory.h"

namespace mg {

namespace {

const char* op_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add: return "add";
    case BinaryOp::Sub: return "sub";
    case BinaryOp::Mul: return "mul";
    case BinaryOp::Div: return "div";
  }
  return "binary";
}

template <class T>
void binary_forward_cpu(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  switch (op) {
    case BinaryOp::Add: return cpu::binary_kernel<T>(out, a, b, [](T x, T y) { return x + y; });
    case BinaryOp::Sub: return cpu::binary_kernel<T>(out, a, b, [](T x, T y) { return x - y; });
    case BinaryOp::Mul: return cpu::binary_kernel<T>(out, a, b, [](T x, T y) { return x * y; });
    case BinaryOp::Div: return cpu::binary_kernel<T>(out, a, b, [](T x, T y) { return x / y; });
  }
}

// The forward of all four ops, without autograd.
Tensor binary_forward(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = op_name(op);
  check_floating_inputs(name, {a, b});
  Tensor out = empty(broadcast_shapes(a.shape(), b.shape(), name), {.dtype = a.dtype(), .device = a.device()});
  if (out.device().is_cpu()) dispatch_floating(a.dtype(), name, [&]<class T>() { binary_forward_cpu<T>(op, out, a, b); });
  else MG_CUDA_DISPATCH(cuda::binary(op, out, a, b));
  return out;
}

// Gradients of a op b. a and b are saved only by the ops whose derivative needs them.
struct BinaryBackward : Node {
  BinaryOp op;
  Tensor a, b;  // saved: mul needs both, div needs both; add/sub need neither
  Shape a_shape, b_shape;

  std::string name() const override { return str(op_name(op), "Backward"); }
  void release_saved() override { a = b = Tensor(); }

  TensorList backward(const TensorList& grads) override {
    const Tensor& g = grads[0];
    bool need_a = next_edges[0].node != nullptr, need_b = next_edges[1].node != nullptr;
    Tensor da, db;
    switch (op) {
      case BinaryOp::Add:  // d(a+b) = da + db
        if (need_a) da = g;
        if (need_b) db = g;
        break;
      case BinaryOp::Sub:  // d(a-b) = da - db  (g * -1 is exactly -g, and runs on every device)
        if (need_a) da = g;
        if (need_b) db = mul(g, -1.0);
        break;
      case BinaryOp::Mul:  // d(ab) = b da + a db
        if (need_a) da = mul(g, b);
        if (need_b) db = mul(g, a);
        break;
      case BinaryOp::Div:  // d(a/b) = da / b - a db / b^2
        if (need_a) da = div(g, b);
        if (need_b) db = mul(div(mul(g, a), mul(b, b)), -1.0);
        break;
    }
    if (da.defined()) da = sum_to_shape(da, a_shape);
    if (db.defined()) db = sum_to_shape(db, b_shape);
    return {da, db};
  }
};

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(op, a, b);
  if (needs_grad({a, b})) {
    auto node = std::make_shared<BinaryBackward>();
    node->op = op;
    if (op == BinaryOp::Mul || op == BinaryOp::Div) {
      node->a = a.detach();
      node->b = b.detach();
    }
    node->a_shape = a.shape();
    node->b_shape = b.shape();
    connect(node, {a, b}, {out});
  }
  return out;
}

Tensor scalar_like(const Tensor& t, double value) {
  return full({}, value, {.dtype = t.dtype(), .device = t.device()});
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Add, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Sub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Mul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Div, a, b); }

// Scalars become 0-d tensors that broadcast; the CPU loop turns them into a register operand.
Tensor add(const Tensor& a, double b) { return add(a, scalar_like(a, b)); }
Tensor sub(const Tensor& a, double b) { return sub(a, scalar_like(a, b)); }
Tensor mul(const Tensor& a, double b) { return mul(a, scalar_like(a, b)); }
Tensor div(const Tensor& a, double b) { return div(a, scalar_like(a, b)); }
Tensor rsub(double a, const Tensor& b) { return sub(scalar_like(b, a), b); }
Tensor rdiv(double a, const Tensor& b) { return div(scalar_like(b, a), b); }

Tensor sum_to_shape(const Tensor& t, const Shape& shape) {
  if (t.shape() == shape) return t;
  broadcast_shapes(shape, t.shape(), "sum_to_shape");  // throws if `shape` does not broadcast to t
  int64_t lead = t.dim() - static_cast<int64_t>(shape.size());
  MG_CHECK(lead >= 0, "sum_to_shape: cannot sum ", t.shape(), " to the larger shape ", shape);
  Shape dims;
  for (int64_t d = 0; d < t.dim(); ++d)
    if (d < lead || (shape[d - lead] == 1 && t.size(d) != 1)) dims.push_back(d);
  Tensor reduced = dims.empty() ? t : sum(t, dims, /*keepdim=*/true);
  return reshape(reduced, shape);
}

void add_inplace(Tensor& dst, const Tensor& src, double alpha) {
  MG_CHECK(!(grad_mode_enabled() && dst.requires_grad()),
           "add_inplace: cannot modify a tensor that requires grad while grad mode is on (use NoGradGuard)");
  check_floating_inputs("add_inplace", {dst, src});
  MG_CHECK(dst.shape() == src.shape(), "add_inplace: shapes ", dst.shape(), " and ", src.shape(), " differ");
  if (dst.device().is_cpu()) {
    dispatch_floating(dst.dtype(), "add_inplace", [&]<class T>() {
      T a = static_cast<T>(alpha);
      cpu::binary_kernel<T>(dst, dst, src, [a](T x, T y) { return x + a * y; });
    });
  } else {
    MG_CUDA_DISPATCH(cuda::add_inplace(dst, src, alpha));
  }
}

void mul_inplace(Tensor& dst, double value) {
  MG_CHECK(!(grad_mode_enabled() && dst.requires_grad()),
           "mul_inplace: cannot modify a tensor that requires grad while grad mode is on (use NoGradGuard)");
  check_floating("mul_inplace", dst);
  if (dst.device().is_cpu()) {
    dispatch_floating(dst.dtype(), "mul_inplace", [&]<class T>() {
      T v = static_cast<T>(value);
      cpu::unary_kernel<T, T>(dst, dst, [v](T x) { return x * v; });
    });
  } else {
    MG_CUDA_DISPATCH(cuda::mul_inplace(dst, value));
  }
}

}  // namespace mg
