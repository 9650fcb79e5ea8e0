// Causal depthwise conv1d kernels. Every loop runs over time with a fixed tap k, so the inner
// loop is a unit-stride multiply-add the compiler vectorizes: tap k reads x shifted right by
// shift = K - 1 - k, and times t < shift see only the zero padding.
#include "ops/cpu/conv1d.h"

#include <algorithm>
#include <vector>

#include "ops/cpu/parallel.h"

namespace mg::cpu {

namespace {

// Rows of about 16K elements per task.
int64_t row_grain(int64_t length) { return std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(length, 1)); }

// sum_{i<n} term(i) in double over 8 independent lanes, so the loop vectorizes without
// -ffast-math; the lanes are added in a fixed order (deterministic).
template <class Term>
double lane_sum(int64_t n, Term term) {
  double lanes[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) lanes[j] += term(i + j);
  for (; i < n; ++i) lanes[0] += term(i);
  double total = 0;
  for (double lane : lanes) total += lane;
  return total;
}

}  // namespace

template <class T>
void causal_conv1d_forward_cpu(T* out, const T* x, const T* weight, const T* bias, Conv1dSizes sizes) {
  // Named copies, not a structured binding: the lambdas capture them, which clang cannot.
  const int64_t B = sizes.batch, C = sizes.channels, L = sizes.length, K = sizes.kernel;
  parallel_for(0, B * C, row_grain(L), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      int64_t c = row % C;
      const T* x_row = x + row * L;  // x[b, c, :]
      const T* w = weight + c * K;   // weight[c, :]
      T* o = out + row * L;
      std::fill(o, o + L, bias ? bias[c] : T(0));
      for (int64_t k = 0; k < K; ++k) {
        int64_t shift = K - 1 - k;
        for (int64_t t = shift; t < L; ++t) o[t] += w[k] * x_row[t - shift];
      }
    }
  });
}

template <class T>
void causal_conv1d_backward_cpu(T* dx, T* dweight, T* dbias, const T* dout, const T* x, const T* weight,
                                Conv1dSizes sizes) {
  // Named copies, not a structured binding: the lambdas capture them, which clang cannot.
  const int64_t B = sizes.batch, C = sizes.channels, L = sizes.length, K = sizes.kernel;
  if (dx) {
    // dx[b, c, s] = sum_k weight[c, k] * dout[b, c, s + shift]: the forward run backwards in time.
    parallel_for(0, B * C, row_grain(L), [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) {
        const T* g = dout + row * L;
        const T* w = weight + (row % C) * K;
        T* d = dx + row * L;
        std::fill(d, d + L, T(0));
        for (int64_t k = 0; k < K; ++k) {
          int64_t shift = K - 1 - k;
          for (int64_t s = 0; s + shift < L; ++s) d[s] += w[k] * g[s + shift];
        }
      }
    });
  }
  if (!dweight && !dbias) return;
  // Per channel c: sums over b then t, in that order, accumulated in double.
  parallel_for(0, C, std::max<int64_t>(1, row_grain(B * L)), [&](int64_t begin, int64_t end) {
    std::vector<double> acc(K);
    for (int64_t c = begin; c < end; ++c) {
      std::fill(acc.begin(), acc.end(), 0.0);
      double bias_acc = 0;
      for (int64_t b = 0; b < B; ++b) {
        const T* g = dout + (b * C + c) * L;
        const T* x_row = x + (b * C + c) * L;
        if (dweight) {
          for (int64_t k = 0; k < K; ++k) {
            int64_t shift = K - 1 - k;  // dweight[c, k] += sum_t dout[t] * x[t - shift]
            acc[k] += lane_sum(L - shift, [&](int64_t i) { return double(g[i + shift]) * x_row[i]; });
          }
        }
        if (dbias) bias_acc += lane_sum(L, [&](int64_t i) { return double(g[i]); });
      }
      if (dweight)
        for (int64_t k = 0; k < K; ++k) dweight[c * K + k] = static_cast<T>(acc[k]);
      if (dbias) dbias[c] = static_cast<T>(bias_acc);
    }
  });
}

#define MG_INSTANTIATE(T)                                                                                  \
  template void causal_conv1d_forward_cpu<T>(T*, const T*, const T*, const T*, Conv1dSizes);              \
  template void causal_conv1d_backward_cpu<T>(T*, T*, T*, const T*, const T*, const T*, Conv1dSizes);
MG_INSTANTIATE(float)
MG_INSTANTIATE(double)
#undef MG_INSTANTIATE

}  // namespace mg::cpu
