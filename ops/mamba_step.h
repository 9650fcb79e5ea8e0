#pragma once
// The recurrent step of a whole Mamba language model fused into one op, for generation.
//
// Composed from library ops (MambaLM::step_composed) a token costs ~20 small ops per layer, each
// checking its inputs, allocating its output and dispatching. At batch 1 on the CPU that
// bookkeeping cost more than the math (~150 us per token for ~1 MFLOP at the default config).
// This op runs every layer straight over the weights' and the states' memory, with its
// intermediates in one workspace the caller keeps between tokens (allocated at the first step):
//   h = E[token]
//   per layer:  xn = RMSNorm(h);  x | z = in_proj(xn);  u = silu(conv1d step(x));
//               dt | B | C = x_proj(u);  delta = dt_proj.weight dt;
//               y = selective scan step(u, delta + dt_proj.bias, A, B, C, D, z);  h += out_proj(y)
//   logits = E RMSNorm_f(h)
// The same kernels as the ops (the RMSNorm, GEMM and scan-step kernels of ops/cpu/); x_proj's and
// out_proj's sums over channels are split into per-block partials (ops/cpu/mamba_step.cpp), so the
// fused and the composed step agree to rounding, not bit for bit (tests/models/fused_step_test.cpp),
// and the fused one gives the same bits for any thread count.
//
// Devices: a CPU kernel (ops/cpu/mamba_step.cpp). No CUDA kernel yet: on a GPU the composed step's
// few hundred launches are captured once in a CUDA graph and replayed per token
// (apps/common/token_stepper.h), which removes the launch cost this op removes on the CPU; the op
// says so by name when given GPU tensors. mamba_step_supported() tells a caller which to use.
#include <vector>

#include "tensor/tensor.h"

namespace mg {

// One residual block, h += mixer(RMSNorm(h)), as the step reads it. Optional tensors undefined.
struct MambaStepLayer {
  Tensor norm_weight;  // (d_model)
  double norm_eps = 1e-5;
  Tensor in_weight;    // (2 d_inner, d_model)
  Tensor in_bias;      // (2 d_inner) or undefined
  Tensor conv_weight;  // (d_inner, 1, d_conv)
  Tensor conv_bias;    // (d_inner) or undefined
  Tensor x_weight;     // (dt_rank + 2 N, d_inner), no bias
  Tensor dt_weight;    // (d_inner, dt_rank)
  Tensor dt_bias;      // (d_inner)
  Tensor A;            // (d_inner, N): -exp(A_log), computed once per generation by the caller
  Tensor D;            // (d_inner)
  Tensor out_weight;   // (d_model, d_inner)
  Tensor out_bias;     // (d_model) or undefined
  Tensor conv_state;   // (B, d_inner, d_conv), oldest input first: updated in place
  Tensor ssm_state;    // (B, d_inner, N): updated in place
};

struct MambaStepModel {
  Tensor embeddings;  // (vocab, d_model): the input embedding and the tied head
  std::vector<MambaStepLayer> layers;
  Tensor norm_f_weight;  // (d_model)
  double norm_f_eps = 1e-5;
};

// Whether mamba_step has a kernel for these tensors: all on a device with a kernel (the CPU),
// contiguous, of one floating dtype, every required tensor present, at least one layer.
bool mamba_step_supported(const MambaStepModel& model);

// tokens (B) int64 -> logits (B, vocab), advancing every layer's conv and SSM state in place.
// `workspace` is the op's scratch memory: pass the same (initially undefined) tensor at every
// step; it is (re)allocated when the batch, the thread count or the dtype changes. No autograd.
// Throws mg::Error naming the op for tensors it cannot run (see mamba_step_supported), tokens
// outside [0, vocab), and states whose shapes do not fit the tokens.
Tensor mamba_step(const Tensor& tokens, const MambaStepModel& model, Tensor& workspace);

}  // namespace mg
