// Elementwise unary ops on the GPU (the CPU twins are the Op structs of ops/unary_math.cpp, with
// the same formulas and the same saved tensors), where/masked_fill, and dropout's mask.
#include "cuda/device_math.cuh"
#include "cuda/elementwise.cuh"
#include "cuda/kernels.h"
#include "ops/dropout_hash.h"

namespace mg::cuda {

namespace {

template <UnaryOp op, class T>
__device__ T unary_value(T x, T p0, T p1) {
  if constexpr (op == UnaryOp::Neg) return -x;
  if constexpr (op == UnaryOp::Exp) return dexp(x);
  if constexpr (op == UnaryOp::Log) return dlog(x);
  if constexpr (op == UnaryOp::Sqrt) return dsqrt(x);
  if constexpr (op == UnaryOp::Rsqrt) return T(1) / dsqrt(x);
  if constexpr (op == UnaryOp::Pow) return p0 == T(2) ? x * x : dpow(x, p0);
  if constexpr (op == UnaryOp::Abs) return fabs(x);
  if constexpr (op == UnaryOp::Sigmoid) return dsigmoid(x);
  if constexpr (op == UnaryOp::Tanh) return dtanh(x);
  if constexpr (op == UnaryOp::Relu) return x < T(0) ? T(0) : x;  // NaN stays NaN
  if constexpr (op == UnaryOp::Gelu) return x * T(0.5) * (T(1) + derf(x * T(0.70710678118654752440)));
  if constexpr (op == UnaryOp::GeluTanh) {  // x/2 (1 + tanh(k (x + c x^3))), k = sqrt(2 / pi), c = 0.044715
    return T(0.5) * x * (T(1) + dtanh(T(0.79788456080286535588) * (x + T(0.044715) * x * x * x)));
  }
  if constexpr (op == UnaryOp::Silu) return dsilu(x);
  if constexpr (op == UnaryOp::Softplus) return dsoftplus(x, p0, p1);
  return x;
}

// dL/dx from g = dL/dy, the input x and the output y (whichever the op saved).
template <UnaryOp op, class T>
__device__ T unary_gradient(T g, T x, T y, T p0, T p1) {
  if constexpr (op == UnaryOp::Neg) return -g;
  if constexpr (op == UnaryOp::Exp) return g * y;
  if constexpr (op == UnaryOp::Log) return g / x;
  if constexpr (op == UnaryOp::Sqrt) return g / (T(2) * y);
  if constexpr (op == UnaryOp::Rsqrt) return T(-0.5) * g * y * y * y;
  if constexpr (op == UnaryOp::Pow) {
    if (p0 == T(0)) return T(0);
    if (p0 == T(2)) return g * T(2) * x;
    return g * p0 * dpow(x, p0 - T(1));
  }
  if constexpr (op == UnaryOp::Abs) return x > T(0) ? g : (x < T(0) ? -g : T(0));
  if constexpr (op == UnaryOp::Sigmoid) return g * y * (T(1) - y);
  if constexpr (op == UnaryOp::Tanh) return g * (T(1) - y * y);
  if constexpr (op == UnaryOp::Relu) return y > T(0) ? g : T(0);
  if constexpr (op == UnaryOp::Gelu) {
    T cdf = T(0.5) * (T(1) + derf(x * T(0.70710678118654752440)));
    T pdf = dexp(T(-0.5) * x * x) * T(0.3989422804014327);  // 1 / sqrt(2 pi)
    return g * (cdf + x * pdf);
  }
  if constexpr (op == UnaryOp::GeluTanh) {  // (1 + t) / 2 + x/2 (1 - t^2) k (1 + 3 c x^2),  t = tanh(u)
    const T k = T(0.79788456080286535588), c = T(0.044715), x2 = x * x;
    const T t = dtanh(k * (x + c * x2 * x));
    return g * (T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * k * (T(1) + T(3) * c * x2));
  }
  if constexpr (op == UnaryOp::Silu) {
    T s = dsigmoid(x);
    return g * s * (T(1) + x * (T(1) - s));
  }
  if constexpr (op == UnaryOp::Softplus) {
    T bx = p0 * x;
    return bx > p1 ? g : g * dsigmoid(bx);
  }
  return g;
}

template <UnaryOp op, class T>
struct UnaryForward {
  T* out;
  const T* x;
  T p0, p1;
  using Loaded = T;
  __device__ T load(const int64_t* off) const { return x[off[1]]; }
  __device__ void store(const int64_t* off, T v) const { out[off[0]] = unary_value<op>(v, p0, p1); }
};

template <UnaryOp op, class T>
struct UnaryBackward {
  T* dx;
  const T* dout;
  const T* x;  // dout's pointer when the op saved no input (then never read)
  const T* y;
  T p0, p1;
  struct Loaded {
    T g, x, y;
  };
  __device__ Loaded load(const int64_t* off) const { return {dout[off[1]], x[off[2]], y[off[3]]}; }
  __device__ void store(const int64_t* off, Loaded v) const { dx[off[0]] = unary_gradient<op>(v.g, v.x, v.y, p0, p1); }
};

// Calls fn.template operator()<op>() with op as a compile-time constant.
template <class Fn>
void dispatch_unary(UnaryOp op, Fn&& fn) {
  switch (op) {
    case UnaryOp::Neg: return fn.template operator()<UnaryOp::Neg>();
    case UnaryOp::Exp: return fn.template operator()<UnaryOp::Exp>();
    case UnaryOp::Log: return fn.template operator()<UnaryOp::Log>();
    case UnaryOp::Sqrt: return fn.template operator()<UnaryOp::Sqrt>();
    case UnaryOp::Rsqrt: return fn.template operator()<UnaryOp::Rsqrt>();
    case UnaryOp::Pow: return fn.template operator()<UnaryOp::Pow>();
    case UnaryOp::Abs: return fn.template operator()<UnaryOp::Abs>();
    case UnaryOp::Sigmoid: return fn.template operator()<UnaryOp::Sigmoid>();
    case UnaryOp::Tanh: return fn.template operator()<UnaryOp::Tanh>();
    case UnaryOp::Relu: return fn.template operator()<UnaryOp::Relu>();
    case UnaryOp::Gelu: return fn.template operator()<UnaryOp::Gelu>();
    case UnaryOp::GeluTanh: return fn.template operator()<UnaryOp::GeluTanh>();
    case UnaryOp::Silu: return fn.template operator()<UnaryOp::Silu>();
    case UnaryOp::Softplus: return fn.template operator()<UnaryOp::Softplus>();
  }
  throw InternalError("cuda unary: unknown op");
}

template <class C, class T>
struct WhereFunctor {
  T* out;
  const C* condition;
  const T* a;
  const T* b;
  using Loaded = T;
  __device__ T load(const int64_t* off) const { return condition[off[1]] != C(0) ? a[off[2]] : b[off[3]]; }
  __device__ void store(const int64_t* off, T v) const { out[off[0]] = v; }
};

template <class T>
__global__ void dropout_mask_kernel(T* mask, int64_t n, double p, uint64_t seed, T scale) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    mask[i] = dropout_keeps(seed, static_cast<uint64_t>(i), p) ? scale : T(0);
}

}  // namespace

void unary_forward(UnaryOp op, UnaryParams params, const Tensor& out, const Tensor& x) {
  dispatch_floating(out.dtype(), "unary", [&]<class T>() {
    dispatch_unary(op, [&]<UnaryOp kOp>() {
      UnaryForward<kOp, T> f{out.data<T>(), x.data<T>(), static_cast<T>(params.p0), static_cast<T>(params.p1)};
      launch_elementwise<2>("unary", out.shape(), {&out, &x}, f);
    });
  });
}

void unary_backward(UnaryOp op, UnaryParams params, const Tensor& dx, const Tensor& dout, const Tensor& x,
                    const Tensor& y) {
  const Tensor& xs = x.defined() ? x : dout;  // placeholders keep one launch shape
  const Tensor& ys = y.defined() ? y : dout;
  dispatch_floating(dx.dtype(), "unary", [&]<class T>() {
    dispatch_unary(op, [&]<UnaryOp kOp>() {
      UnaryBackward<kOp, T> f{dx.data<T>(), dout.data<T>(), xs.data<T>(), ys.data<T>(), static_cast<T>(params.p0),
                              static_cast<T>(params.p1)};
      launch_elementwise<4>("unary backward", dx.shape(), {&dx, &dout, &xs, &ys}, f);
    });
  });
}

void where(const Tensor& out, const Tensor& condition, const Tensor& a, const Tensor& b) {
  dispatch_all(condition.dtype(), [&]<class C>() {
    dispatch_all(out.dtype(), [&]<class T>() {
      WhereFunctor<C, T> f{out.data<T>(), condition.data<C>(), a.data<T>(), b.data<T>()};
      launch_elementwise<4>("where", out.shape(), {&out, &condition, &a, &b}, f);
    });
  });
}

void dropout_mask(const Tensor& mask, double p, uint64_t seed) {
  if (mask.numel() == 0) return;
  DeviceGuard guard(mask.device().index);
  const double scale = p < 1.0 ? 1.0 / (1.0 - p) : 0.0;
  dispatch_floating(mask.dtype(), "dropout", [&]<class T>() {
    dropout_mask_kernel<T><<<grid_for(mask.numel(), 256, 4096), 256, 0, current_stream()>>>(
        mask.data<T>(), mask.numel(), p, seed, static_cast<T>(scale));
  });
  CUDA_CHECK_LAUNCH();
}

}  // namespace mg::cuda
