#pragma once
// CPU kernels of the causal depthwise conv1d (see ops/conv1d.h for the op):
//   out[b, c, t] = bias[c] + sum_{k<K} weight[c, k] * x[b, c, t - (K - 1) + k],  x = 0 at t < 0.
// All tensors are contiguous: x, out, dout, dx (B, C, L); weight, dweight (C, K); bias, dbias (C).
// Each (b, c) row is independent in the forward and in dx (threaded over B * C rows); dweight and
// dbias sum over b and t per channel (threaded over C, summed in a fixed order: deterministic).
// Instantiated for float and double in conv1d.cpp.
#include <cstdint>

namespace mg::cpu {

struct Conv1dSizes {
  int64_t batch = 0, channels = 0, length = 0, kernel = 0;  // B, C, L, K
};

// Forward: out from x, weight and bias (bias may be null). Saves nothing; the backward reads x.
template <class T>
void causal_conv1d_forward_cpu(T* out, const T* x, const T* weight, const T* bias, Conv1dSizes sizes);

// Backward: any of dx, dweight, dbias may be null (not needed).
//   dx[b, c, s]  = sum_k weight[c, k] * dout[b, c, s + (K - 1) - k]     (terms with t < L)
//   dweight[c, k] = sum_{b, t} dout[b, c, t] * x[b, c, t - (K - 1) + k]
//   dbias[c]     = sum_{b, t} dout[b, c, t]
template <class T>
void causal_conv1d_backward_cpu(T* dx, T* dweight, T* dbias, const T* dout, const T* x, const T* weight,
                                Conv1dSizes sizes);

}  // namespace mg::cpu
