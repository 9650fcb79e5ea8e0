#pragma once
// RMSNorm kernels on contiguous buffers, one row of `dim` elements per normalized vector.
// Sums accumulate in double; rows run in parallel.
#include <cstdint>

namespace mg {

// out: (rows, dim), rstd: (rows) saved for the backward, x: (rows, dim), weight: (dim) or null.
//   rstd[r] = 1 / sqrt(mean_i x[r, i]^2 + eps),  out[r, i] = x[r, i] * rstd[r] * weight[i]
template <class T>
void rms_norm_forward_cpu(T* out, T* rstd, const T* x, const T* weight, int64_t rows, int64_t dim, double eps);

// dx: (rows, dim); dweight: (dim) or null (not needed); dout, x: (rows, dim); weight: (dim) or null.
// dweight sums over rows in fixed chunks added in order: the same bits for any thread count.
template <class T>
void rms_norm_backward_cpu(T* dx, T* dweight, const T* dout, const T* x, const T* weight, const T* rstd, int64_t rows,
                           int64_t dim);

}  // namespace mg
