#pragma once
// LayerNorm kernels on contiguous buffers, one row of `dim` elements per normalized vector.
// Sums accumulate in double; rows run in parallel in fixed chunks.
#include <cstdint>

namespace mg::cpu {

// out: (rows, dim); mean, rstd: (rows), saved for the backward; x: (rows, dim);
// weight, bias: (dim) or null.
//   mean[r] = mean_i x[r, i],  rstd[r] = 1 / sqrt(mean_i (x[r, i] - mean[r])^2 + eps)
//   out[r, i] = (x[r, i] - mean[r]) * rstd[r] * weight[i] + bias[i]
template <class T>
void layer_norm_forward_cpu(T* out, T* mean, T* rstd, const T* x, const T* weight, const T* bias, int64_t rows,
                            int64_t dim, double eps);

// dx: (rows, dim); dweight, dbias: (dim) or null (not needed); dout, x: (rows, dim); weight: (dim)
// or null; mean, rstd: (rows) from the forward. dweight and dbias sum over rows in fixed chunks
// added in order: the same bits for any thread count.
template <class T>
void layer_norm_backward_cpu(T* dx, T* dweight, T* dbias, const T* dout, const T* x, const T* weight, const T* mean,
                             const T* rstd, int64_t rows, int64_t dim);

}  // namespace mg::cpu
