#pragma once
// Scalar math shared by the CUDA kernels: the GPU twins of ops/cpu/fast_math.h. The CUDA math
// library's expf/logf/log1pf/tanhf/erff are accurate to 1-2 ulp (not the __expf intrinsics,
// which lose precision for large |x|), so results agree with the CPU kernels to float rounding.
#include <cuda_runtime.h>

namespace mg::cuda {

__device__ inline float dexp(float x) { return expf(x); }
__device__ inline double dexp(double x) { return exp(x); }
__device__ inline float dlog(float x) { return logf(x); }
__device__ inline double dlog(double x) { return log(x); }
__device__ inline float dlog1p(float x) { return log1pf(x); }
__device__ inline double dlog1p(double x) { return log1p(x); }
__device__ inline float dtanh(float x) { return tanhf(x); }
__device__ inline double dtanh(double x) { return tanh(x); }
__device__ inline float derf(float x) { return erff(x); }
__device__ inline double derf(double x) { return erf(x); }
__device__ inline float dsqrt(float x) { return sqrtf(x); }
__device__ inline double dsqrt(double x) { return sqrt(x); }
__device__ inline float dpow(float x, float p) { return powf(x, p); }
__device__ inline double dpow(double x, double p) { return pow(x, p); }

template <class T>
__device__ inline T dsigmoid(T x) {
  return T(1) / (T(1) + dexp(-x));
}

template <class T>
__device__ inline T dsilu(T x) {
  return x / (T(1) + dexp(-x));
}

// log(1 + exp(beta x)) / beta, or x where beta x > threshold (PyTorch's linear regime).
template <class T>
__device__ inline T dsoftplus(T x, T beta = T(1), T threshold = T(20)) {
  T bx = beta * x;
  return bx > threshold ? x : dlog1p(dexp(bx)) / beta;
}

// exprel(x) = (e^x - 1) / x and exprel'(x) = (e^x - exprel(x)) / x given ex = e^x, with the
// Taylor series for |x| < 0.5 where the closed forms cancel (see ops/cpu/fast_math.h):
//   exprel(x) = sum_k x^k / (k+1)!,   exprel'(x) = sum_k (k+1) x^k / (k+2)!
template <class T>
__device__ inline T dexprel_series(T x, bool derivative) {
  constexpr int kTerms = sizeof(T) == 4 ? 9 : 16;
  // coefficient k: 1 / (k+1)!  or  (k+1) / (k+2)!; Horner from the highest term down
  T p = T(0);
  for (int k = kTerms - 1; k >= 0; --k) {
    double factorial = 1;
    for (int j = 2; j <= k + (derivative ? 2 : 1); ++j) factorial *= j;
    p = p * x + T((derivative ? k + 1 : 1) / factorial);
  }
  return p;
}

template <class T>
__device__ inline T dexprel(T x, T ex) {
  if (fabs(x) < T(0.5)) return dexprel_series(x, false);
  return (ex - T(1)) / x;
}

template <class T>
__device__ inline T dexprel_derivative(T x, T ex) {
  if (fabs(x) < T(0.5)) return dexprel_series(x, true);
  return (ex - dexprel(x, ex)) / x;
}

// Sum over a warp's 32 lanes, in a fixed butterfly order (every lane gets the same total).
template <class T>
__device__ inline T warp_sum(T v) {
#pragma unroll
  for (int offset = 16; offset >= 1; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

template <class T>
__device__ inline T warp_max(T v) {
#pragma unroll
  for (int offset = 16; offset >= 1; offset /= 2) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

}  // namespace mg::cuda
