#pragma once
// CPU kernels of softmax, log_softmax and cross_entropy, as paired forward/backward functions over
// contiguous buffers. Softmax runs along the middle axis of a (outer, C, inner) view: inner == 1
// is the usual last-dim case (contiguous rows); inner > 1 walks blocks of columns so the innermost
// loop is still unit-stride. Sums accumulate in double in a fixed order, so results do not depend
// on the thread count.
#include <cstdint>

namespace mg::cpu {

// y = softmax(x) or log_softmax(x) along C.   x, y: (outer, C, inner)
template <class T>
void softmax_forward_cpu(T* y, const T* x, int64_t outer, int64_t C, int64_t inner, bool log);

// From dy and the saved output y (both (outer, C, inner)):
//   softmax:      dx = y * (dy - sum_c dy * y)
//   log_softmax:  dx = dy - exp(y) * sum_c dy
template <class T>
void softmax_backward_cpu(T* dx, const T* dy, const T* y, int64_t outer, int64_t C, int64_t inner, bool log);

// Per row n of logits (N, C): lse[n] = logsumexp(logits[n]) and loss[n] = lse[n] - logits[n, t_n];
// both 0 where targets[n] == ignore_index. Targets must already be validated.
template <class T>
void cross_entropy_forward_cpu(double* loss, double* lse, const T* logits, const int64_t* targets, int64_t N,
                               int64_t C, int64_t ignore_index);

// dlogits[n, c] = (softmax(logits[n])_c - [c == t_n]) * scale, with scale = dloss / count;
// rows whose target is ignore_index get zeros.   dlogits, logits: (N, C); lse: (N) from forward
template <class T>
void cross_entropy_backward_cpu(T* dlogits, const T* logits, const int64_t* targets, const double* lse, double scale,
                                int64_t N, int64_t C, int64_t ignore_index);

}  // namespace mg::cpu
