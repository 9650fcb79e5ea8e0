#pragma once
// The recurrent step of the whole Mamba LM fused into one pass on the CPU, for generation.
//
// MambaLM::step_composed builds a token from library ops: ~20 small ops per layer, each checking
// its inputs, allocating its output and dispatching. At batch 1 that bookkeeping cost more than
// the math (~150 us per token for ~1 MFLOP at the default config). Here every layer runs straight
// over the parameters' and the state's memory, with its intermediates in one workspace that lives
// in the InferenceState (allocated at the first step, reused by every later one):
//   h = E[token]
//   per layer:  xn = RMSNorm(h);  x | z = in_proj(xn);  u = silu(conv1d step(x));
//               dt | B | C = x_proj(u);  delta = dt_proj.weight dt;
//               y = selective scan step(u, delta + dt_proj.bias, A, B, C, D, z);  h += out_proj(y)
//   logits = E RMSNorm_f(h)
// The same kernels as the ops (the RMSNorm, GEMM and scan-step kernels of ops/cpu/); x_proj's and
// out_proj's sums over channels are split into per-block partials (see fused_step.cpp), so the two
// paths agree to rounding, not bit for bit (tests/models/fused_step_test.cpp).
// As in the composed step, A = -exp(A_log) is computed at a state's first step and kept in it: a
// state continues with the weights it started with; start a new one after changing them.
#include "tensor/tensor.h"

namespace mg::mamba {

class MambaLM;
struct InferenceState;

// Whether fused_step can run this model with this state: every parameter and state tensor on the
// CPU, contiguous, of the model's floating dtype, and one state per layer. (Otherwise
// MambaLM::step runs the composed ops, which also report what is wrong with a bad state.)
bool fused_step_supported(const MambaLM& model, const InferenceState& state);

// tokens (B) int64 -> logits (B, padded vocab), advancing every layer's state in place.
Tensor fused_step(const MambaLM& model, const Tensor& tokens, InferenceState& state);

}  // namespace mg::mamba
