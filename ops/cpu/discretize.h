#pragma once
// CPU kernels of the SSM discretization (ops/discretize.h). The exact zero-order hold for B is
//   B_bar = (exp(delta A) - 1) / A * B = delta * exprel(delta A) * B,   exprel(x) = (exp(x) - 1) / x,
// which never divides by A, so A -> 0 is just x -> 0 in exprel. exprel and its derivative, with
// their Taylor series near 0 where the closed forms lose every digit to cancellation, are in
// ops/cpu/fast_math.h: the selective scan's exact-ZOH option uses the same functions.
#include "ops/cpu/fast_math.h"
#include "tensor/tensor.h"

namespace mg::cpu {

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
