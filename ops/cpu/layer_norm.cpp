// LayerNorm forward and backward kernels (Ba, Kiros & Hinton 2016). Per row (n = dim, mu = mean,
// r = rstd = (var + eps)^(-1/2), xhat = (x - mu) r, g = dout, w = weight):
//   y_i = xhat_i w_i + b_i
//   dxhat_i = g_i w_i
//   dx_j = r (dxhat_j - mean_i(dxhat_i) - xhat_j mean_i(dxhat_i xhat_i))
//     (from dxhat_i/dx_j = r (delta_ij - 1/n - xhat_i xhat_j / n), the Jacobian of a centred,
//      rescaled vector; as in llm.c's layernorm_backward)
//   dw_i = sum over rows of g_i xhat_i,   db_i = sum over rows of g_i
// The variance is computed in a second pass over the row (x - mu)^2, not as E[x^2] - mu^2, which
// cancels catastrophically for rows far from zero.
#include "ops/cpu/layer_norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/cpu/parallel.h"
#include "ops/cpu/sum_in_double.h"

namespace mg::cpu {

template <class T>
void layer_norm_forward_cpu(T* out, T* mean, T* rstd, const T* x, const T* weight, const T* bias, int64_t rows,
                            int64_t dim, double eps) {
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(dim, 1));
  parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const T* xr = x + r * dim;
      T* yr = out + r * dim;
      const double mu = sum_in_double(dim, [&](int64_t i) { return static_cast<double>(xr[i]); }) / dim;
      const double var = sum_in_double(dim, [&](int64_t i) {
                           const double c = xr[i] - mu;
                           return c * c;
                         }) / dim;
      const double inv = 1.0 / std::sqrt(var + eps);
      mean[r] = static_cast<T>(mu);
      rstd[r] = static_cast<T>(inv);
      const T m = static_cast<T>(mu), s = static_cast<T>(inv);
      for (int64_t i = 0; i < dim; ++i) {
        T v = (xr[i] - m) * s;
        if (weight != nullptr) v *= weight[i];
        if (bias != nullptr) v += bias[i];
        yr[i] = v;
      }
    }
  });
}

template <class T>
void layer_norm_backward_cpu(T* dx, T* dweight, T* dbias, const T* dout, const T* x, const T* weight, const T* mean,
                             const T* rstd, int64_t rows, int64_t dim) {
  // Chunks depend only on the problem size, so the dweight/dbias partial sums are thread-count free.
  constexpr int64_t kMaxChunks = 256;
  const int64_t grain = std::max<int64_t>(16, (rows + kMaxChunks - 1) / kMaxChunks);
  const int64_t chunks = (rows + grain - 1) / grain;
  const bool param_grads = dweight != nullptr || dbias != nullptr;
  // partial: (chunks, 2, dim): per chunk, sum of g * xhat, then sum of g.
  std::vector<double> partial(param_grads ? chunks * 2 * dim : 0, 0.0);
  parallel_for(0, chunks, 1, [&](int64_t chunk_begin, int64_t chunk_end) {
    std::vector<double> dxhat(dim);
    for (int64_t c = chunk_begin; c < chunk_end; ++c) {
      double* dw = param_grads ? partial.data() + c * 2 * dim : nullptr;
      double* db = param_grads ? dw + dim : nullptr;
      for (int64_t r = c * grain; r < std::min(rows, (c + 1) * grain); ++r) {
        const T* xr = x + r * dim;
        const T* gr = dout + r * dim;
        T* dxr = dx + r * dim;
        const double mu = mean[r], s = rstd[r];
        for (int64_t i = 0; i < dim; ++i) dxhat[i] = static_cast<double>(gr[i]) * (weight ? weight[i] : T(1));
        const double mean_dxhat = sum_in_double(dim, [&](int64_t i) { return dxhat[i]; }) / dim;
        const double mean_dxhat_xhat =
            sum_in_double(dim, [&](int64_t i) { return dxhat[i] * (xr[i] - mu) * s; }) / dim;
        for (int64_t i = 0; i < dim; ++i) {
          const double xhat = (xr[i] - mu) * s;
          dxr[i] = static_cast<T>(s * (dxhat[i] - mean_dxhat - xhat * mean_dxhat_xhat));
        }
        if (dw != nullptr) {
          for (int64_t i = 0; i < dim; ++i) {
            dw[i] += static_cast<double>(gr[i]) * (xr[i] - mu) * s;
            db[i] += static_cast<double>(gr[i]);
          }
        }
      }
    }
  });
  if (!param_grads) return;
  for (int64_t i = 0; i < dim; ++i) {
    double total_w = 0, total_b = 0;
    for (int64_t c = 0; c < chunks; ++c) {
      total_w += partial[c * 2 * dim + i];
      total_b += partial[c * 2 * dim + dim + i];
    }
    if (dweight != nullptr) dweight[i] = static_cast<T>(total_w);
    if (dbias != nullptr) dbias[i] = static_cast<T>(total_b);
  }
}

#define MG_INSTANTIATE(T)                                                                                     \
  template void layer_norm_forward_cpu<T>(T*, T*, T*, const T*, const T*, const T*, int64_t, int64_t, double); \
  template void layer_norm_backward_cpu<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*, int64_t, \
                                           int64_t);
MG_INSTANTIATE(float)
MG_INSTANTIATE(double)
#undef MG_INSTANTIATE

}  // namespace mg::cpu
