#include "ops/cpu/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "ops/cpu/fast_math.h"
#include "ops/cpu/parallel.h"

namespace mg::cpu {

namespace {

constexpr int64_t kGrainElements = 1 << 15;  // elements per parallel chunk, roughly
constexpr int64_t kBlock = 64;               // columns per item in the strided (inner > 1) case
constexpr int kLanes = 16;

// Row reductions keep kLanes interleaved partial results (lane k sees elements k, k + kLanes, ...):
// a fixed order, and one that vectorizes without -ffast-math, where a single running value would
// wait on its own latency at every element. "unroll 1" keeps the lane loop a loop, which GCC
// vectorizes, instead of unrolling it into kLanes scalar chains.
template <class T>
T row_max(const T* x, int64_t n) {  // NaNs are skipped here but reach the result via exp(x - max)
  T m[kLanes];
  std::fill(m, m + kLanes, -std::numeric_limits<T>::infinity());
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
#pragma GCC unroll 1
    for (int k = 0; k < kLanes; ++k) m[k] = x[i + k] > m[k] ? x[i + k] : m[k];
  }
  for (; i < n; ++i) m[0] = x[i] > m[0] ? x[i] : m[0];
  return *std::max_element(m, m + kLanes);
}

template <class T>
double row_sum(const T* x, int64_t n) {  // in double
  double acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
#pragma GCC unroll 1
    for (int k = 0; k < kLanes; ++k) acc[k] += double(x[i + k]);
  }
  for (; i < n; ++i) acc[0] += double(x[i]);
  return std::accumulate(acc, acc + kLanes, 0.0);
}

template <class T>
double row_dot(const T* a, const T* b, int64_t n) {  // in double
  double acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
#pragma GCC unroll 1
    for (int k = 0; k < kLanes; ++k) acc[k] += double(a[i + k]) * double(b[i + k]);
  }
  for (; i < n; ++i) acc[0] += double(a[i]) * double(b[i]);
  return std::accumulate(acc, acc + kLanes, 0.0);
}

// One contiguous row: y = exp(x - max) / sum, or (x - max) - log(sum).   x, y: (C)
template <class T>
void softmax_row(T* y, const T* x, int64_t C, bool log) {
  T m = row_max(x, C);
  for (int64_t c = 0; c < C; ++c) y[c] = fast_exp(x[c] - m);
  double s = row_sum(y, C);
  if (log) {
    T log_s = static_cast<T>(std::log(s));
    for (int64_t c = 0; c < C; ++c) y[c] = (x[c] - m) - log_s;
  } else {
    T inv = static_cast<T>(1.0 / s);
    for (int64_t c = 0; c < C; ++c) y[c] *= inv;
  }
}

// Columns [0, w) of one (C, inner) slab, w <= kBlock: the same three passes, vectorized across columns.
template <class T>
void softmax_columns(T* y, const T* x, int64_t C, int64_t inner, int64_t w, bool log) {
  T m[kBlock], t[kBlock];
  double s[kBlock];
  std::fill(m, m + w, -std::numeric_limits<T>::infinity());
  std::fill(s, s + w, 0.0);
  for (int64_t c = 0; c < C; ++c)
    for (int64_t i = 0; i < w; ++i) m[i] = x[c * inner + i] > m[i] ? x[c * inner + i] : m[i];
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t i = 0; i < w; ++i) y[c * inner + i] = fast_exp(x[c * inner + i] - m[i]);
    for (int64_t i = 0; i < w; ++i) s[i] += double(y[c * inner + i]);
  }
  if (log) {
    for (int64_t i = 0; i < w; ++i) t[i] = static_cast<T>(std::log(s[i]));
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < w; ++i) y[c * inner + i] = (x[c * inner + i] - m[i]) - t[i];
  } else {
    for (int64_t i = 0; i < w; ++i) t[i] = static_cast<T>(1.0 / s[i]);
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < w; ++i) y[c * inner + i] *= t[i];
  }
}

template <class T>
void softmax_backward_row(T* dx, const T* dy, const T* y, int64_t C, bool log) {
  if (log) {
    T s = static_cast<T>(row_sum(dy, C));
    for (int64_t c = 0; c < C; ++c) dx[c] = dy[c] - fast_exp(y[c]) * s;
  } else {
    T dot = static_cast<T>(row_dot(dy, y, C));
    for (int64_t c = 0; c < C; ++c) dx[c] = y[c] * (dy[c] - dot);
  }
}

template <class T>
void softmax_backward_columns(T* dx, const T* dy, const T* y, int64_t C, int64_t inner, int64_t w, bool log) {
  double s[kBlock];  // log: sum_c dy; softmax: sum_c dy * y
  T t[kBlock];
  std::fill(s, s + w, 0.0);
  for (int64_t c = 0; c < C; ++c) {
    const T* g = dy + c * inner;
    const T* yc = y + c * inner;
    if (log)
      for (int64_t i = 0; i < w; ++i) s[i] += double(g[i]);
    else
      for (int64_t i = 0; i < w; ++i) s[i] += double(g[i]) * double(yc[i]);
  }
  for (int64_t i = 0; i < w; ++i) t[i] = static_cast<T>(s[i]);
  for (int64_t c = 0; c < C; ++c) {
    T* d = dx + c * inner;
    const T* g = dy + c * inner;
    const T* yc = y + c * inner;
    if (log)
      for (int64_t i = 0; i < w; ++i) d[i] = g[i] - fast_exp(yc[i]) * t[i];
    else
      for (int64_t i = 0; i < w; ++i) d[i] = yc[i] * (g[i] - t[i]);
  }
}

// Calls fn(offset, w) for every (outer index, column block) of a (outer, C, inner) tensor, in
// parallel; offset is the element offset of the block's first column at c = 0.
template <class Fn>
void for_each_slab(int64_t outer, int64_t C, int64_t inner, Fn fn) {
  int64_t width = inner == 1 ? 1 : kBlock;
  int64_t blocks = (inner + width - 1) / width;
  int64_t grain = std::max<int64_t>(1, kGrainElements / std::max<int64_t>(C * width, 1));
  parallel_for(0, outer * blocks, grain, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      int64_t o = item / blocks, i0 = (item % blocks) * width;
      fn(o * C * inner + i0, std::min(width, inner - i0));
    }
  });
}

}  // namespace

template <class T>
void softmax_forward_cpu(T* y, const T* x, int64_t outer, int64_t C, int64_t inner, bool log) {
  for_each_slab(outer, C, inner, [&](int64_t offset, int64_t w) {
    if (inner == 1) softmax_row(y + offset, x + offset, C, log);
    else softmax_columns(y + offset, x + offset, C, inner, w, log);
  });
}

template <class T>
void softmax_backward_cpu(T* dx, const T* dy, const T* y, int64_t outer, int64_t C, int64_t inner, bool log) {
  for_each_slab(outer, C, inner, [&](int64_t offset, int64_t w) {
    if (inner == 1) softmax_backward_row(dx + offset, dy + offset, y + offset, C, log);
    else softmax_backward_columns(dx + offset, dy + offset, y + offset, C, inner, w, log);
  });
}

template <class T>
void cross_entropy_forward_cpu(double* loss, double* lse, const T* logits, const int64_t* targets, int64_t N,
                               int64_t C, int64_t ignore_index) {
  int64_t grain = std::max<int64_t>(1, kGrainElements / std::max<int64_t>(C, 1));
  parallel_for(0, N, grain, [&](int64_t begin, int64_t end) {
    std::vector<T> e(C);  // exp(x - max) of one row, so the exp loop and the sum both vectorize
    for (int64_t n = begin; n < end; ++n) {
      loss[n] = lse[n] = 0;
      if (targets[n] == ignore_index) continue;
      const T* x = logits + n * C;
      T m = row_max(x, C);
      for (int64_t c = 0; c < C; ++c) e[c] = fast_exp(x[c] - m);
      lse[n] = double(m) + std::log(row_sum(e.data(), C));
      loss[n] = lse[n] - double(x[targets[n]]);
    }
  });
}

template <class T>
void cross_entropy_backward_cpu(T* dlogits, const T* logits, const int64_t* targets, const double* lse, double scale,
                                int64_t N, int64_t C, int64_t ignore_index) {
  int64_t grain = std::max<int64_t>(1, kGrainElements / std::max<int64_t>(C, 1));
  parallel_for(0, N, grain, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      T* dx = dlogits + n * C;
      if (targets[n] == ignore_index) {
        std::fill(dx, dx + C, T(0));
        continue;
      }
      const T* x = logits + n * C;
      // x - lse in double: lse may be large, and rounding it to float would skew every probability
      double shift = lse[n];
      T s = static_cast<T>(scale);
      for (int64_t c = 0; c < C; ++c) dx[c] = fast_exp(static_cast<T>(double(x[c]) - shift)) * s;  // softmax * scale
      dx[targets[n]] -= s;                                                 // - onehot * scale
    }
  });
}

#define MG_INSTANTIATE_SOFTMAX(T)                                                                          \
  template void softmax_forward_cpu<T>(T*, const T*, int64_t, int64_t, int64_t, bool);                     \
  template void softmax_backward_cpu<T>(T*, const T*, const T*, int64_t, int64_t, int64_t, bool);          \
  template void cross_entropy_forward_cpu<T>(double*, double*, const T*, const int64_t*, int64_t, int64_t, \
                                             int64_t);                                                     \
  template void cross_entropy_backward_cpu<T>(T*, const T*, const int64_t*, const double*, double, int64_t, \
                                              int64_t, int64_t);
MG_INSTANTIATE_SOFTMAX(float)
MG_INSTANTIATE_SOFTMAX(double)
#undef MG_INSTANTIATE_SOFTMAX

}  // namespace mg::cpu
