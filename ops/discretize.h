#pragma once
// Discretization of a diagonal continuous-time state space model
//     h'(t) = A h(t) + B u(t)
// with step delta, into the recurrence h_t = A_bar h_{t-1} + B_bar u_t (Mamba paper, Gu & Dao
// 2023, Eq. 4). With A diagonal every state is a scalar ODE, so everything is elementwise:
//
//   zero-order hold (u constant over the step; exact):
//     A_bar = exp(delta A)
//     B_bar = (delta A)^-1 (exp(delta A) - I) delta B = (exp(delta A) - 1) / A * B
//           = delta exprel(delta A) B,  exprel(x) = (exp(x) - 1) / x      -> delta B as A -> 0
//   Mamba's simplified hold (what the official kernels compute; first order in delta A):
//     A_bar = exp(delta A),  B_bar = delta B
//
// The selective scan (ops/selective_scan.h) fuses the same math into its kernel (it calls A_bar
// dA_t, and B_bar u_t dBu_t; its option exact_zoh_b picks the zero-order hold for B); these ops
// are the standalone, differentiable version, for tests, tutorials and S4-style models.
//
// Shapes: delta, A and B broadcast against each other (NumPy rules);
//   A_bar: broadcast(delta, A),   B_bar: broadcast(delta, A, B).
// The scan's layout, for example, is one broadcast away:
//   delta (Bt, D, L) -> unsqueeze(-1)           (Bt, D, L, 1)
//   A     (D, N)     -> unsqueeze(1)            (D, 1, N)
//   Bm    (Bt, N, L) -> transpose(1, 2), unsqueeze(1)   (Bt, 1, L, N)
//   => A_bar (Bt, D, L, N), B_bar (Bt, D, L, N)
// Both outputs are differentiable in delta, A and B; A = 0 (and any |delta A| -> 0) is handled
// by series, for the values and the gradients alike, without dividing by zero.
#include "tensor/tensor.h"

namespace mg {

struct DiscretizedSSM {
  Tensor A_bar;  // exp(delta A)
  Tensor B_bar;  // the hold's B, not yet multiplied by u
};

// The exact zero-order hold of Eq. 4 for both A and B.
DiscretizedSSM discretize_zoh(const Tensor& delta, const Tensor& A, const Tensor& B);
// Zero-order hold for A, B_bar = delta B (Mamba's simplification).
DiscretizedSSM discretize_simplified(const Tensor& delta, const Tensor& A, const Tensor& B);

}  // namespace mg
