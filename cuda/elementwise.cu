// Elementwise CUDA kernels: binary ops with broadcasting, copy with dtype cast, fill, and the
// in-place add/mul used by optimizers and gradient accumulation.
//
// The launch machinery they share is cuda/elementwise.cuh.
#include "cuda/check.h"
#include "cuda/kernels.h"
#include "cuda/elementwise.cuh"

namespace mg::cuda {

namespace {

template <class T, BinaryOp op>
struct BinaryFunctor {
  T* out;
  const T* a;
  const T* b;
  struct Loaded {
    T x, y;
  };
  __device__ Loaded load(const int64_t* off) const { return {a[off[1]], b[off[2]]}; }
  __device__ void store(const int64_t* off, Loaded v) const {
    if constexpr (op == BinaryOp::Add) out[off[0]] = v.x + v.y;
    if constexpr (op == BinaryOp::Sub) out[off[0]] = v.x - v.y;
    if constexpr (op == BinaryOp::Mul) out[off[0]] = v.x * v.y;
    if constexpr (op == BinaryOp::Div) out[off[0]] = v.x / v.y;  // IEEE division (no fast-math)
  }
};

template <class Out, class In>
struct CopyFunctor {
  Out* dst;
  const In* src;
  using Loaded = In;
  __device__ In load(const int64_t* off) const { return src[off[1]]; }
  __device__ void store(const int64_t* off, In v) const { dst[off[0]] = static_cast<Out>(v); }
};

template <class T>
struct FillFunctor {
  T* out;
  T value;
  struct Loaded {};
  __device__ Loaded load(const int64_t*) const { return {}; }
  __device__ void store(const int64_t* off, Loaded) const { out[off[0]] = value; }
};

// dst = dst + alpha * src, written as the CPU kernel writes it.
template <class T>
struct AddInplaceFunctor {
  T* dst;
  const T* src;
  T alpha;
  struct Loaded {
    T x, y;
  };
  __device__ Loaded load(const int64_t* off) const { return {dst[off[0]], src[off[1]]}; }
  __device__ void store(const int64_t* off, Loaded v) const { dst[off[0]] = v.x + alpha * v.y; }
};

template <class T>
struct MulInplaceFunctor {
  T* dst;
  T value;
  using Loaded = T;
  __device__ T load(const int64_t* off) const { return dst[off[0]]; }
  __device__ void store(const int64_t* off, T v) const { dst[off[0]] = v * value; }
};

template <class T, BinaryOp op>
void binary_typed(const Tensor& out, const Tensor& a, const Tensor& b) {
  BinaryFunctor<T, op> f{out.data<T>(), a.data<T>(), b.data<T>()};
  launch_elementwise<3>("binary", out.shape(), {&out, &a, &b}, f);
}

}  // namespace

void binary(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  MG_ASSERT(out.dtype() == a.dtype() && out.dtype() == b.dtype(), "binary: dtypes differ");
  dispatch_floating(out.dtype(), "binary", [&]<class T>() {
    switch (op) {
      case BinaryOp::Add: return binary_typed<T, BinaryOp::Add>(out, a, b);
      case BinaryOp::Sub: return binary_typed<T, BinaryOp::Sub>(out, a, b);
      case BinaryOp::Mul: return binary_typed<T, BinaryOp::Mul>(out, a, b);
      case BinaryOp::Div: return binary_typed<T, BinaryOp::Div>(out, a, b);
    }
  });
}

void copy(const Tensor& dst, const Tensor& src) {
  MG_ASSERT(dst.device() == src.device(), "copy: devices differ");
  dispatch_all(dst.dtype(), [&]<class Out>() {
    dispatch_all(src.dtype(), [&]<class In>() {
      CopyFunctor<Out, In> f{dst.data<Out>(), src.data<In>()};
      launch_elementwise<2>("copy", dst.shape(), {&dst, &src}, f);
    });
  });
}

void fill(const Tensor& out, double value) {
  dispatch_all(out.dtype(), [&]<class T>() {
    FillFunctor<T> f{out.data<T>(), static_cast<T>(value)};
    launch_elementwise<1>("fill", out.shape(), {&out}, f);
  });
}

void add_inplace(const Tensor& dst, const Tensor& src, double alpha) {
  MG_ASSERT(dst.dtype() == src.dtype() && dst.shape() == src.shape(), "add_inplace: operands differ");
  dispatch_floating(dst.dtype(), "add_inplace", [&]<class T>() {
    AddInplaceFunctor<T> f{dst.data<T>(), src.data<T>(), static_cast<T>(alpha)};
    launch_elementwise<2>("add_inplace", dst.shape(), {&dst, &src}, f);
  });
}

void mul_inplace(const Tensor& dst, double value) {
  dispatch_floating(dst.dtype(), "mul_inplace", [&]<class T>() {
    MulInplaceFunctor<T> f{dst.data<T>(), static_cast<T>(value)};
    launch_elementwise<1>("mul_inplace", dst.shape(), {&dst}, f);
  });
}

}  // namespace mg::cuda
