#pragma once
// CPU kernels of the selective scan; the math and the public API are in ops/selective_scan.h.
// Plain paired functions on raw, contiguous, row-major pointers: ops/selective_scan.cpp does the
// checks, the dtype dispatch and the autograd node, and calls these.
//
// Names follow the paper: b < B batch, d < D channels ("dim"), n < N state size ("dstate"),
// t < L time ("seqlen"), g < G groups of B/C (channel d reads group d / (D / G)).
#include <cstdint>

#include "ops/scan_kernel_args.h"

namespace mg::cpu {

// The kernels' arguments (ScanSizes, ScanInputs, ScanGrads) are shared with the CUDA kernels.
using mg::ScanGrads;
using mg::ScanInputs;
using mg::ScanSizes;

// The forward saves the state entering every chunk of kScanChunk steps (a checkpoint); the
// backward recomputes the states inside a chunk from it. Extra memory: B D N ceil(L / 64) values,
// 1/4 of u's size at N = 16, instead of the B D L N of storing every state.
inline constexpr int64_t kScanChunk = 64;
// The state is processed in blocks of kScanLanes values (N is padded up to a multiple with A = B
// = C = 0 lanes, which stay 0): 16 floats fill one AVX-512 register, two AVX2 ones.
inline constexpr int64_t kScanLanes = 16;
inline int64_t scan_padded_dstate(int64_t dstate) { return (dstate + kScanLanes - 1) / kScanLanes * kScanLanes; }
inline int64_t scan_chunk_count(int64_t seqlen) { return (seqlen + kScanChunk - 1) / kScanChunk; }
// Values in the checkpoint buffer: (B, D, chunks, padded N).
inline int64_t scan_checkpoint_numel(const ScanSizes& s) {
  return s.batch * s.dim * scan_chunk_count(s.seqlen) * scan_padded_dstate(s.dstate);
}

// The fused, threaded forward. Writes y (B, D, L) and last_state (B, D, N); checkpoints
// (scan_checkpoint_numel values) are written when not nullptr. last_state may alias in.h0 (the
// recurrent step updates its state in place).
template <class T>
void selective_scan_forward_cpu(const ScanInputs<T>& in, T* y, T* last_state, T* checkpoints);

// The backward: from dy (B, D, L) and dlast (B, D, N) (either may be nullptr: zero), the
// gradients of every input, recomputing the states from the forward's checkpoints. The result
// does not depend on the number of threads.
template <class T>
void selective_scan_backward_cpu(const ScanInputs<T>& in, const T* checkpoints, const T* dy, const T* dlast,
                                 const ScanGrads<T>& grads);

// The plain float64 loop, written straight from the formulas (ops/cpu/selective_scan_reference.cpp).
void selective_scan_reference_cpu(const ScanInputs<double>& in, double* y, double* last_state);

}  // namespace mg::cpu
