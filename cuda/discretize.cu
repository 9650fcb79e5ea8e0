// The SSM discretization on the GPU, elementwise over the broadcast shape (the CPU twins and the
// derivatives: ops/cpu/discretize.{h,cpp}):
//   A_bar = exp(delta A)
//   B_bar = delta exprel(delta A) B   (exact zero-order hold)   or   delta B   (Mamba's)
#include "cuda/device_math.cuh"
#include "cuda/elementwise.cuh"
#include "cuda/kernels.h"

namespace mg::cuda {

namespace {

// Operands: A_bar, delta, A.
template <class T>
struct AForward {
  T* a_bar;
  const T *delta, *A;
  using Loaded = T;
  __device__ T load(const int64_t* off) const { return dexp(delta[off[1]] * A[off[2]]); }
  __device__ void store(const int64_t* off, T v) const { a_bar[off[0]] = v; }
};

// Operands: B_bar, delta, A, B.
template <class T>
struct BForward {
  T* b_bar;
  const T *delta, *A, *B;
  bool exact;
  using Loaded = T;
  __device__ T load(const int64_t* off) const {
    const T dt = delta[off[1]], b = B[off[3]];
    if (!exact) return dt * b;
    const T x = dt * A[off[2]];
    return dt * dexprel(x, dexp(x)) * b;  // (exp(dt A) - 1) / A * B without dividing by A
  }
  __device__ void store(const int64_t* off, T v) const { b_bar[off[0]] = v; }
};

// Operands: ddelta, dA, dA_bar, delta, A.   d/d delta = A exp(delta A),  d/dA = delta exp(delta A)
template <class T>
struct ABackward {
  T *ddelta, *dA;
  const T *dA_bar, *delta, *A;
  struct Loaded {
    T g, dt, a;
  };
  __device__ Loaded load(const int64_t* off) const { return {dA_bar[off[2]], delta[off[3]], A[off[4]]}; }
  __device__ void store(const int64_t* off, Loaded v) const {
    const T g = v.g * dexp(v.dt * v.a);
    ddelta[off[0]] = g * v.a;
    dA[off[1]] = g * v.dt;
  }
};

// Operands: ddelta, dA, dB, dB_bar, delta, A, B (dA is a placeholder for the simplified hold).
//   exact (x = delta A): ddelta = g B exp(x), dA = g B delta^2 exprel'(x), dB = g delta exprel(x)
//   simplified:          ddelta = g B,                                     dB = g delta
template <class T>
struct BBackward {
  T *ddelta, *dA, *dB;
  const T *dB_bar, *delta, *A, *B;
  bool exact;
  struct Loaded {
    T g, dt, a, b;
  };
  __device__ Loaded load(const int64_t* off) const { return {dB_bar[off[3]], delta[off[4]], A[off[5]], B[off[6]]}; }
  __device__ void store(const int64_t* off, Loaded v) const {
    if (!exact) {
      ddelta[off[0]] = v.g * v.b;
      dB[off[2]] = v.g * v.dt;
      return;
    }
    const T x = v.dt * v.a, ex = dexp(x);
    ddelta[off[0]] = v.g * v.b * ex;
    dA[off[1]] = v.g * v.b * v.dt * v.dt * dexprel_derivative(x, ex);
    dB[off[2]] = v.g * v.dt * dexprel(x, ex);
  }
};

}  // namespace

void discretize_a_forward(const Tensor& A_bar, const Tensor& delta, const Tensor& A) {
  dispatch_floating(A_bar.dtype(), "discretize", [&]<class T>() {
    launch_elementwise<3>("discretize", A_bar.shape(), {&A_bar, &delta, &A},
                          AForward<T>{A_bar.data<T>(), delta.data<T>(), A.data<T>()});
  });
}

void discretize_b_forward(const Tensor& B_bar, const Tensor& delta, const Tensor& A, const Tensor& B, bool exact) {
  dispatch_floating(B_bar.dtype(), "discretize", [&]<class T>() {
    launch_elementwise<4>("discretize", B_bar.shape(), {&B_bar, &delta, &A, &B},
                          BForward<T>{B_bar.data<T>(), delta.data<T>(), A.data<T>(), B.data<T>(), exact});
  });
}

void discretize_a_backward(const Tensor& ddelta, const Tensor& dA, const Tensor& dA_bar, const Tensor& delta,
                           const Tensor& A) {
  dispatch_floating(dA_bar.dtype(), "discretize", [&]<class T>() {
    launch_elementwise<5>("discretize", dA_bar.shape(), {&ddelta, &dA, &dA_bar, &delta, &A},
                          ABackward<T>{ddelta.data<T>(), dA.data<T>(), dA_bar.data<T>(), delta.data<T>(), A.data<T>()});
  });
}

void discretize_b_backward(const Tensor& ddelta, const Tensor& dA, const Tensor& dB, const Tensor& dB_bar,
                           const Tensor& delta, const Tensor& A, const Tensor& B, bool exact) {
  const Tensor& da = dA.defined() ? dA : ddelta;  // the simplified hold writes no dA
  dispatch_floating(dB_bar.dtype(), "discretize", [&]<class T>() {
    launch_elementwise<7>("discretize", dB_bar.shape(), {&ddelta, &da, &dB, &dB_bar, &delta, &A, &B},
                          BBackward<T>{ddelta.data<T>(), da.data<T>(), dB.data<T>(), dB_bar.data<T>(), delta.data<T>(),
                                       A.data<T>(), B.data<T>(), exact});
  });
}

}  // namespace mg::cuda
