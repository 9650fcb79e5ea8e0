// where(condition, a, b) and masked_fill(x, mask, value): elementwise selection with broadcasting.
//   forward:  out = condition != 0 ? a : b            (out: the broadcast shape of all three)
//   backward: da = sum_to_shape(condition ? dout : 0, a.shape)
//             db = sum_to_shape(condition ? 0 : dout, b.shape)
//   masked_fill(x, mask, value) = where(mask, value, x), so dx = mask ? 0 : dout.
#include "autograd/function.h"
#include "cuda/kernels.h"
#include "ops/binary.h"
#include "ops/check.h"
#include "ops/cpu/loops.h"
#include "ops/indexing.h"
#include "tensor/factory.h"

namespace mg {

namespace {

// out: the broadcast shape; condition (type C), a and b (type T) broadcast to it, any strides.
template <class C, class T>
void where_forward_cpu(const Tensor& out, const Tensor& condition, const Tensor& a, const Tensor& b) {
  cpu::ElementwiseLoop<4>(out.shape(), {&out, &condition, &a, &b}).run([](auto ptrs, auto strides, int64_t n) {
    T* o = reinterpret_cast<T*>(ptrs[0]);
    const C* c = reinterpret_cast<const C*>(ptrs[1]);
    const T* x = reinterpret_cast<const T*>(ptrs[2]);
    const T* y = reinterpret_cast<const T*>(ptrs[3]);
    if (strides[0] == 1 && strides[1] == 1 && strides[2] == 1 && strides[3] == 1) {
      for (int64_t i = 0; i < n; ++i) o[i] = c[i] != C(0) ? x[i] : y[i];
    } else {
      for (int64_t i = 0; i < n; ++i)
        o[i * strides[0]] = c[i * strides[1]] != C(0) ? x[i * strides[2]] : y[i * strides[3]];
    }
  });
}

// The forward without autograd; `op` names the public op in errors.
Tensor where_forward(const char* op, const Tensor& condition, const Tensor& a, const Tensor& b) {
  check_same_device(op, {condition, a, b});
  check_same_dtype(op, {a, b});
  Shape shape = broadcast_shapes(broadcast_shapes(condition.shape(), a.shape(), op), b.shape(), op);
  Tensor out = empty(shape, {.dtype = a.dtype(), .device = a.device()});
  if (out.device().is_cuda()) {
    MG_CUDA_DISPATCH(cuda::where(out, condition, a, b));
    return out;
  }
  dispatch_all(condition.dtype(), [&]<class C>() {
    dispatch_all(a.dtype(), [&]<class T>() { where_forward_cpu<C, T>(out, condition, a, b); });
  });
  return out;
}

struct WhereBackward : Node {
  Tensor condition;  // saved: decides which input each gradient element goes to
  Shape a_shape, b_shape;

  std::string name() const override { return "WhereBackward"; }
  void release_saved() override { condition = Tensor(); }

  TensorList backward(const TensorList& grads) override {
    const Tensor& g = grads[0];
    Tensor zero = zeros({}, {.dtype = g.dtype(), .device = g.device()});
    Tensor da, db;
    if (next_edges[0].node) da = sum_to_shape(where_forward("where", condition, g, zero), a_shape);
    if (next_edges[1].node) db = sum_to_shape(where_forward("where", condition, zero, g), b_shape);
    return {da, db};
  }
};

Tensor where_op(const char* op, const Tensor& condition, const Tensor& a, const Tensor& b) {
  Tensor out = where_forward(op, condition, a, b);
  if (needs_grad({a, b})) {
    auto node = std::make_shared<WhereBackward>();
    node->condition = condition.detach();
    node->a_shape = a.shape();
    node->b_shape = b.shape();
    connect(node, {a, b}, {out});
  }
  return out;
}

}  // namespace

Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b) { return where_op("where", condition, a, b); }

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  MG_CHECK(broadcast_shapes(mask.shape(), x.shape(), "masked_fill") == x.shape(), "masked_fill: mask of shape ",
           mask.shape(), " does not broadcast to the input's shape ", x.shape());
  Tensor fill = full({}, value, {.dtype = x.dtype(), .device = x.device()});
  return where_op("masked_fill", mask, fill, x);
}

}  // namespace mg
