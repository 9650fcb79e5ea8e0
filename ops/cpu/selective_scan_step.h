#pragma once
#include "ops/cpu/selective_scan.h"

namespace mg::cpu {

// One step of the selective scan for recurrent generation, with Mamba's hold (dBu = delta' B u):
// for every (b, d), with the ScanInputs read at L = 1 (u, delta, z: (B, D); Bm, Cm: (B, G, N)):
//   delta' = softplus(delta + bias) (or delta + bias),  h_n = exp(delta' A_n) h_n + delta' B_n u,
//   y = (<C, h> + D u) silu(z)
// state (B, D, N) is h, updated in place. No chunks, checkpoints or lane padding: one step needs
// none of them, and at batch 1 their setup would cost more than the step itself.
template <class T>
void selective_scan_step_cpu(const ScanInputs<T>& in, T* y, T* state);

// The same step for channels [d_begin, d_end) only (every batch row), on the calling thread: for
// callers that split the channels across their own threads (ops/cpu/mamba_step.cpp).
template <class T>
void selective_scan_step_channels_cpu(const ScanInputs<T>& in, T* y, T* state, int64_t d_begin, int64_t d_end);

}  // namespace mg::cpu
