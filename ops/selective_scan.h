#pragma once
// The selective scan (S6) of Mamba (Gu & Dao 2023, Algorithm 2), with the semantics of the
// official reference `selective_scan_ref` (state-spaces/mamba), so official weights behave the same.
//
// Inputs (b < B batch, d < D channels, n < N state size, t < L time):
//   u      (B, D, L)            the input sequence
//   delta  (B, D, L)            step sizes (before bias/softplus)
//   A      (D, N)               diagonal continuous-time state matrix (real; negative in Mamba)
//   Bm, Cm (B, N, L) or (B, G, N, L) with D % G == 0 (channel d uses group d / (D / G))
//   args.D_skip (D), args.z (B, D, L), args.delta_bias (D), args.h0 (B, D, N): all optional
// Math:
//   delta'_t = softplus(delta_t + delta_bias) if delta_softplus, else delta_t + delta_bias
//   dA_t     = exp(delta'_t A)                                  (zero-order hold for A)
//   dBu_t    = delta'_t Bm_t u_t                                (Mamba's simplified hold for B)
//            = (exp(delta'_t A) - 1) / A * Bm_t u_t              (exact ZOH, if exact_zoh_b)
//   h_t      = dA_t * h_{t-1} + dBu_t,   h_{-1} = h0 (or zeros)  h: (B, D, N)
//   y_t      = <Cm_t, h_t> + D_skip * u_t;   y_t *= silu(z_t) if z is given
// Outputs: y (B, D, L) and the final state h_{L-1} (B, D, N); both differentiable in every input.
#include "tensor/tensor.h"

namespace mg {

struct SelectiveScanArgs {
  // Every member has a default member initializer, so designated initializers may leave any out
  // (GCC's -Wmissing-field-initializers warns about members without one, even of class type).
  Tensor D_skip{};      // (D) or undefined
  Tensor z{};           // (B, D, L) or undefined
  Tensor delta_bias{};  // (D) or undefined
  Tensor h0{};          // (B, D, N) or undefined: the initial state, for chunked or recurrent use
  bool delta_softplus = false;
  bool exact_zoh_b = false;  // exact zero-order hold for B instead of delta * B
};

struct SelectiveScanResult {
  Tensor y;           // (B, D, L)
  Tensor last_state;  // (B, D, N)
};

// The fused, threaded, vectorized kernel with a memory-frugal backward (states recomputed from
// chunk-boundary checkpoints; never a (B, D, L, N) tensor).
SelectiveScanResult selective_scan(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                                   const Tensor& Cm, const SelectiveScanArgs& args = {});

// The plain float64 loop written straight from the formulas above: the reference every fast path
// is tested against. Not differentiable; returns float64 tensors.
SelectiveScanResult selective_scan_reference(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                                             const Tensor& Cm, const SelectiveScanArgs& args = {});

// The same forward computed with a work-efficient (Blelloch) parallel scan over L of the
// associative operator (a1, b1) o (a2, b2) = (a1 a2, a2 b1 + b2). Not differentiable.
SelectiveScanResult selective_scan_parallel(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                                            const Tensor& Cm, const SelectiveScanArgs& args = {});

// One recurrent step for generation, O(1) in the sequence length; no autograd.
//   state (B, D, N) is updated in place; u, delta, z (B, D); Bm, Cm (B, N) or (B, G, N).
// Returns y (B, D), equal to the scan's y_t for the same inputs.
Tensor selective_scan_step(Tensor& state, const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                           const Tensor& Cm, const SelectiveScanArgs& args = {});

}  // namespace mg
