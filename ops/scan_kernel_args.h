#pragma once
// The arguments of every selective scan kernel, CPU (ops/cpu/selective_scan.h) and CUDA
// (cuda/kernels.h): raw, contiguous, row-major pointers and the sizes. ops/selective_scan.cpp
// checks the tensors and fills these in. The math is in ops/selective_scan.h.
//
// Names follow the paper: b < B batch, d < D channels ("dim"), n < N state size ("dstate"),
// t < L time ("seqlen"), g < G groups of B/C (channel d reads group d / (D / G)).
#include <cstdint>

namespace mg {

struct ScanSizes {
  int64_t batch = 0, dim = 0, dstate = 0, seqlen = 0, groups = 1;
  int64_t channels_per_group() const { return dim / groups; }
};

// The inputs of one scan. Optional ones are nullptr when absent.
template <class T>
struct ScanInputs {
  ScanSizes size;
  const T* u = nullptr;           // (B, D, L)
  const T* delta = nullptr;       // (B, D, L)
  const T* A = nullptr;           // (D, N)
  const T* Bm = nullptr;          // (B, G, N, L)
  const T* Cm = nullptr;          // (B, G, N, L)
  const T* D_skip = nullptr;      // (D)
  const T* z = nullptr;           // (B, D, L)
  const T* delta_bias = nullptr;  // (D)
  const T* h0 = nullptr;          // (B, D, N)
  bool delta_softplus = false;
  bool exact_zoh_b = false;
};

// Gradients, written (not accumulated) by the backward, shaped like the inputs. nullptr for an
// input that is absent (D_skip, z, delta_bias, h0); the others are always written.
template <class T>
struct ScanGrads {
  T* du = nullptr;           // (B, D, L)
  T* ddelta = nullptr;       // (B, D, L)
  T* dA = nullptr;           // (D, N)
  T* dBm = nullptr;          // (B, G, N, L)
  T* dCm = nullptr;          // (B, G, N, L)
  T* dD_skip = nullptr;      // (D)
  T* dz = nullptr;           // (B, D, L)
  T* ddelta_bias = nullptr;  // (D)
  T* dh0 = nullptr;          // (B, D, N)
};

}  // namespace mg
