#pragma once
// The CPU kernels of elementwise unary ops, as paired functions over whole tensors:
//   unary_forward_cpu<Op, T>(out, x)            out = Op::forward(x)
//   unary_backward_cpu<Op, T>(dx, dout, x, out)  dx = Op::backward(dout, x, out)
// Op supplies the scalar math (see ops/unary_math.cpp); the loops handle strides and threads.
#include "ops/cpu/loops.h"

namespace mg::cpu {

template <class Op, class T>
void unary_forward_cpu(const Tensor& out, const Tensor& x, const Op& op) {
  unary_kernel<T, T>(out, x, [&op](T v) { return op.template forward<T>(v); });
}

// dx, dout, x and out share one shape; dx is contiguous. x or out may be undefined when Op's
// backward does not read it (it then receives zeros).
template <class Op, class T>
void unary_backward_cpu(const Tensor& dx, const Tensor& dout, const Tensor& x, const Tensor& out, const Op& op) {
  const Tensor& a = x.defined() ? x : dout;  // placeholders keep one loop shape
  const Tensor& b = out.defined() ? out : dout;
  bool has_x = x.defined(), has_out = out.defined();
  ElementwiseLoop<4>(dx.shape(), {&dx, &dout, &a, &b}).run([&](auto ptrs, auto strides, int64_t n) {
    T* d = reinterpret_cast<T*>(ptrs[0]);
    const T* g = reinterpret_cast<const T*>(ptrs[1]);
    const T* xv = reinterpret_cast<const T*>(ptrs[2]);
    const T* yv = reinterpret_cast<const T*>(ptrs[3]);
    if (strides[0] == 1 && strides[1] == 1 && strides[2] == 1 && strides[3] == 1) {
      for (int64_t i = 0; i < n; ++i)
        d[i] = op.template backward<T>(g[i], has_x ? xv[i] : T(0), has_out ? yv[i] : T(0));
    } else {
      for (int64_t i = 0; i < n; ++i)
        d[i * strides[0]] = op.template backward<T>(g[i * strides[1]], has_x ? xv[i * strides[2]] : T(0),
                                                    has_out ? yv[i * strides[3]] : T(0));
    }
  });
}

}  // namespace mg::cpu
