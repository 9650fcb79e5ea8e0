#pragma once
// sum_{i<n} term(i) in double, in 8 independent partial sums (a fixed order, so the same bits
// every time) that the compiler can keep in vector registers instead of one serial chain.
// Shared by the normalization kernels (rms_norm, layer_norm).
#include <cstdint>

namespace mg::cpu {

template <class Term>
double sum_in_double(int64_t n, Term&& term) {
  double lanes[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) lanes[k] += term(i + k);
  double total = 0;
  for (int k = 0; k < 8; ++k) total += lanes[k];
  for (; i < n; ++i) total += term(i);
  return total;
}

}  // namespace mg::cpu
