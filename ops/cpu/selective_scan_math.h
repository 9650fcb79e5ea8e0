#pragma once
// The scalar and lane helpers that the CPU selective scan's forward and backward kernels share
// (ops/cpu/selective_scan_forward.cpp, ops/cpu/selective_scan_backward.cpp): the block sizes,
// softplus and its derivative, and sums over the kLanes state lanes in a fixed order.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "ops/cpu/fast_math.h"
#include "ops/cpu/selective_scan.h"

namespace mg::cpu::scan_detail {

// Internal linkage, as when the forward and the backward were one file: only those two files
// include this, and GCC then inlines these as it did there (with external linkage it left
// scan_block out of line in the backward's channel loop).
namespace {

inline constexpr int64_t K = kScanChunk;
inline constexpr int64_t kLanes = kScanLanes;
// Below about this many values of work a parallel task is not worth its start-up: parallel_for
// grains are sized to it (results never depend on the grain).
inline constexpr int64_t kParallelWork = 1 << 15;

// ---- Scalar math, branch-free so that the loops calling it vectorize.

// softplus(x) = log(1 + e^x), and x itself above 20 (PyTorch's threshold). Written as
// max(x, 0) + log1p(w), w = e^-|x| in (0, 1], with log1p(w) = 2 artanh(s) = 2 (s + s^3/3 + s^5/5 + ...),
// s = w / (2 + w) <= 1/3: each term is 9x smaller, 7 (float) or 16 (double) terms suffice.
template <class T>
inline T softplus(T x) {
  constexpr int kTerms = sizeof(T) == 4 ? 7 : 16;
  T w = fast_exp(-std::abs(x));
  T s = w / (T(2) + w), s2 = s * s;
  T series = T(1) / T(2 * kTerms - 1);
  for (int k = kTerms - 2; k >= 0; --k) series = series * s2 + T(1) / T(2 * k + 1);
  T value = std::max(x, T(0)) + T(2) * s * series;
  return x > T(20) ? x : value;
}
// softplus'(x) = sigmoid(x), and 1 above the threshold.
template <class T>
inline T softplus_derivative(T x) { return x > T(20) ? T(1) : fast_sigmoid(x); }

// exprel(x) = (e^x - 1) / x and its derivative, for the exact hold, are in ops/cpu/fast_math.h.

// ---- Sums over the state lanes.

// Each step of a block produces 16 terms whose sum is needed (y~_t needs <C_t, h_t>); a step
// writes its terms as one row of a (steps, 16) tile, and the rows are summed afterwards, 16 at a
// time, by a transpose-and-add tree: every level adds the two halves of each row while packing two
// rows into one vector, so 16 rows take 45 vector instructions (~3 a row) and the sums come out as
// one vector, where summing each row alone takes 8 a row and plain loops compile worse still (a
// sequential sum, or spills). Written with GCC/Clang vector types and __builtin_shufflevector; the
// order of the additions is fixed, so results are too.
template <class T>
inline T lane_sum(const T* v) {  // one row: the same tree, 16 -> 8 -> 4 -> 2 -> 1
  typedef T V16 __attribute__((vector_size(16 * sizeof(T))));
  typedef T V8 __attribute__((vector_size(8 * sizeof(T))));
  typedef T V4 __attribute__((vector_size(4 * sizeof(T))));
  V16 x;
  std::memcpy(&x, v, sizeof(x));
  V8 a = __builtin_shufflevector(x, x, 0, 1, 2, 3, 4, 5, 6, 7) +
         __builtin_shufflevector(x, x, 8, 9, 10, 11, 12, 13, 14, 15);
  V4 b = __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
  V4 c = b + __builtin_shufflevector(b, b, 2, 3, 0, 1);
  V4 d = c + __builtin_shufflevector(c, c, 1, 0, 3, 2);
  return d[0];
}

// out[r] += sum of row r of tile (rows, 16), for every r < rows.
template <class T>
void add_row_sums(const T* tile, int64_t rows, T* out) {
  static_assert(kLanes == 16, "the tree below is written for 16 lanes");
  typedef T V16 __attribute__((vector_size(16 * sizeof(T))));
  int64_t r = 0;
  for (; r + 16 <= rows; r += 16) {
    V16 x[16];
    for (int i = 0; i < 16; ++i) std::memcpy(&x[i], tile + (r + i) * kLanes, sizeof(x[i]));
    for (int i = 0; i < 8; ++i) {  // x[i] = [8 partial sums of row 2i | 8 of row 2i + 1]
      V16 a = x[2 * i], b = x[2 * i + 1];
      x[i] = __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
             __builtin_shufflevector(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    }
    for (int i = 0; i < 4; ++i) {  // x[i] = [4 partial sums of each of rows 4i .. 4i + 3]
      V16 a = x[2 * i], b = x[2 * i + 1];
      x[i] = __builtin_shufflevector(a, b, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) +
             __builtin_shufflevector(a, b, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
    }
    for (int i = 0; i < 2; ++i) {  // x[i] = [2 partial sums of each of rows 8i .. 8i + 7]
      V16 a = x[2 * i], b = x[2 * i + 1];
      x[i] = __builtin_shufflevector(a, b, 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29) +
             __builtin_shufflevector(a, b, 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31);
    }
    V16 sums = __builtin_shufflevector(x[0], x[1], 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30) +
               __builtin_shufflevector(x[0], x[1], 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    V16 o;  // out[r .. r + 15] += the sums of rows r .. r + 15
    std::memcpy(&o, out + r, sizeof(o));
    o += sums;
    std::memcpy(out + r, &o, sizeof(o));
  }
  for (; r < rows; ++r) out[r] += lane_sum(tile + r * kLanes);
}

// x[0] + ... + x[len - 1], as kLanes interleaved partial sums (a loop that vectorizes, where a
// running sum is a chain of dependent adds) then lane_sum. The order depends on len only.
template <class T>
T sum_steps(const T* x, int64_t len) {
  T partial[kLanes] = {};
  int64_t t = 0;
  for (; t + kLanes <= len; t += kLanes)
    for (int64_t k = 0; k < kLanes; ++k) partial[k] += x[t + k];
  for (int64_t k = 0; t + k < len; ++k) partial[k] += x[t + k];
  return lane_sum(partial);
}

}  // namespace

}  // namespace mg::cpu::scan_detail
