// RMSNorm forward and backward kernels. The math of the backward, per row (n = dim,
// r = rstd = (mean(x^2) + eps)^(-1/2), g = dout, w = weight):
//   y_i = x_i r w_i
//   dr/dx_j = -1/2 (mean(x^2) + eps)^(-3/2) * 2 x_j / n = -r^3 x_j / n
//   dx_j = g_j w_j r + sum_i g_i w_i x_i dr/dx_j = r (g_j w_j - x_j r^2 (sum_i g_i w_i x_i) / n)
//   dw_i = sum over rows of g_i x_i r
#include "ops/cpu/rms_norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/cpu/parallel.h"
#include "ops/cpu/sum_in_double.h"

namespace mg {

using cpu::sum_in_double;

template <class T>
void rms_norm_forward_cpu(T* out, T* rstd, const T* x, const T* weight, int64_t rows, int64_t dim, double eps) {
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(dim, 1));
  parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const T* xr = x + r * dim;
      T* yr = out + r * dim;
      const double sum_squares = sum_in_double(dim, [&](int64_t i) { return static_cast<double>(xr[i]) * xr[i]; });
      const double inv = 1.0 / std::sqrt(sum_squares / static_cast<double>(dim) + eps);
      rstd[r] = static_cast<T>(inv);
      const T s = static_cast<T>(inv);
      if (weight != nullptr) {
        for (int64_t i = 0; i < dim; ++i) yr[i] = xr[i] * s * weight[i];
      } else {
        for (int64_t i = 0; i < dim; ++i) yr[i] = xr[i] * s;
      }
    }
  });
}

template <class T>
void rms_norm_backward_cpu(T* dx, T* dweight, const T* dout, const T* x, const T* weight, const T* rstd, int64_t rows,
                           int64_t dim) {
  // Chunks depend only on the problem size, so the dweight partial sums are thread-count free.
  constexpr int64_t kMaxChunks = 256;
  const int64_t grain = std::max<int64_t>(16, (rows + kMaxChunks - 1) / kMaxChunks);
  const int64_t chunks = (rows + grain - 1) / grain;
  std::vector<double> partial(dweight != nullptr ? chunks * dim : 0, 0.0);
  parallel_for(0, chunks, 1, [&](int64_t chunk_begin, int64_t chunk_end) {
    for (int64_t c = chunk_begin; c < chunk_end; ++c) {
      double* dw = dweight != nullptr ? partial.data() + c * dim : nullptr;
      for (int64_t r = c * grain; r < std::min(rows, (c + 1) * grain); ++r) {
        const T* xr = x + r * dim;
        const T* gr = dout + r * dim;
        T* dxr = dx + r * dim;
        const double s = rstd[r];
        const double dot =
            weight != nullptr  // sum_i g_i w_i x_i
                ? sum_in_double(dim, [&](int64_t i) { return static_cast<double>(gr[i]) * weight[i] * xr[i]; })
                : sum_in_double(dim, [&](int64_t i) { return static_cast<double>(gr[i]) * xr[i]; });
        const double k = s * s * dot / static_cast<double>(dim);
        for (int64_t i = 0; i < dim; ++i) {
          const double gw = static_cast<double>(gr[i]) * (weight ? weight[i] : T(1));
          dxr[i] = static_cast<T>(s * (gw - xr[i] * k));
        }
        if (dw != nullptr)
          for (int64_t i = 0; i < dim; ++i) dw[i] += static_cast<double>(gr[i]) * xr[i] * s;
      }
    }
  });
  if (dweight == nullptr) return;
  for (int64_t i = 0; i < dim; ++i) {
    double total = 0;
    for (int64_t c = 0; c < chunks; ++c) total += partial[c * dim + i];
    dweight[i] = static_cast<T>(total);
  }
}

template void rms_norm_forward_cpu<float>(float*, float*, const float*, const float*, int64_t, int64_t, double);
template void rms_norm_forward_cpu<double>(double*, double*, const double*, const double*, int64_t, int64_t, double);
template void rms_norm_backward_cpu<float>(float*, float*, const float*, const float*, const float*, const float*,
                                           int64_t, int64_t);
template void rms_norm_backward_cpu<double>(double*, double*, const double*, const double*, const double*,
                                            const double*, int64_t, int64_t);

}  // namespace mg
