#pragma once
// CPU kernels of the SSM discretization (ops/discretize.h), and the scalar function they share
// with the selective scan's exact-ZOH option:
//
//   exprel(x) = (exp(x) - 1) / x,   exprel(0) = 1        (the name follows scipy.special.exprel)
//
// The exact zero-order hold for B is  B_bar = (exp(delta A) - 1) / A * B = delta * exprel(delta A) * B,
// which never divides by A, so A -> 0 is just x -> 0 in exprel. Near 0, both exprel and its
// derivative lose every digit to cancellation if computed from their closed forms, so they use
// their Taylor series there:
//   exprel(x)  = sum_{k>=0} x^k / (k+1)!          = 1 + x/2 + x^2/6 + ...
//   exprel'(x) = sum_{k>=0} (k+1) x^k / (k+2)!    = 1/2 + x/3 + x^2/8 + ...
//              = (exp(x) - exprel(x)) / x         (closed form, used for |x| >= kSeriesCutoff)
#include <cmath>

#include "tensor/tensor.h"

namespace mg::cpu {

// Below this |x| the series are used. At |x| = 0.5 the closed form of exprel' loses about 2 bits
// (it subtracts two numbers near 1 whose difference is about x/2), and 16 series terms leave a
// truncation error of 0.5^16 / 17! ~ 4e-20: both are below double precision.
inline constexpr double kSeriesCutoff = 0.5;
inline constexpr int kSeriesTerms = 16;

template <class T>
T exprel(T x) {
  if (std::abs(x) < T(kSeriesCutoff)) {
    // Horner from the last term: 1 + x/2 (1 + x/3 (1 + x/4 (...)))
    T sum = T(1);
    for (int k = kSeriesTerms; k >= 1; --k) sum = T(1) + x * sum / T(k + 1);
    return sum;
  }
  return std::expm1(x) / x;
}

template <class T>
T exprel_derivative(T x) {
  if (std::abs(x) < T(kSeriesCutoff)) {
    // sum_{k>=0} (k+1) x^k / (k+2)!, term by term (c_k = x^k / (k+2)!), summed smallest first.
    T terms[kSeriesTerms];
    T c = T(0.5);
    for (int k = 0; k < kSeriesTerms; ++k) {
      terms[k] = T(k + 1) * c;
      c *= x / T(k + 3);
    }
    T sum = T(0);
    for (int k = kSeriesTerms - 1; k >= 0; --k) sum += terms[k];
    return sum;
  }
  return (std::exp(x) - exprel(x)) / x;
}

// Forward kernels. Outputs are contiguous and already sized; inputs broadcast to them.
//   A_bar = exp(delta A)                                         A_bar: broadcast(delta, A)
//   B_bar = delta exprel(delta A) B  (exact)  or  delta B        B_bar: broadcast(delta, A, B)
template <class T>
void discretize_a_forward_cpu(const Tensor& A_bar, const Tensor& delta, const Tensor& A);
template <class T>
void discretize_b_forward_cpu(const Tensor& B_bar, const Tensor& delta, const Tensor& A, const Tensor& B, bool exact);

// Backward kernels: per-element gradients in the output's (broadcast) shape; the caller sums
// them down to each input's shape. Outputs are contiguous, shaped like the incoming gradient.
//   from A_bar:  ddelta = dA_bar A exp(delta A),  dA = dA_bar delta exp(delta A)
template <class T>
void discretize_a_backward_cpu(const Tensor& ddelta, const Tensor& dA, const Tensor& dA_bar, const Tensor& delta,
                               const Tensor& A);
//   from B_bar (exact; x = delta A):
//     ddelta = dB_bar B exp(x)          (d/d delta of (exp(delta A) - 1) / A)
//     dA     = dB_bar B delta^2 exprel'(x)
//     dB     = dB_bar delta exprel(x)
//   from B_bar (simplified): ddelta = dB_bar B, dB = dB_bar delta; dA is not written.
template <class T>
void discretize_b_backward_cpu(const Tensor& ddelta, const Tensor& dA, const Tensor& dB, const Tensor& dB_bar,
                               const Tensor& delta, const Tensor& A, const Tensor& B, bool exact);

}  // namespace mg::cpu
