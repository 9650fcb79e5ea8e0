// The fused CPU selective scan: its forward and backward kernels (the math: ops/selective_scan.h).
//
// Forward. Each channel (b, d) is one independent recurrence over t; channels run in parallel.
// A channel walks its sequence chunk by chunk (kScanChunk steps) and its state block by block
// (kScanLanes lanes of n, in registers); per step and lane:
//   dA_t = exp(delta'_t A)                                   (fast_exp: vectorizes)
//   h_t  = dA_t h_{t-1} + drive_t hold_t B_t                  (dBu_t; drive and hold below)
//   y~_t = <C_t, h_t> + D u_t,   y_t = y~_t silu(z_t)
// with drive_t hold_t = delta'_t u_t * 1 (Mamba's hold) or u_t * delta'_t exprel(delta'_t A) (exact
// zero-order hold, exprel(x) = (e^x - 1) / x). Nothing of size (B, D, L, N) is stored: Bm and Cm are
// read from a (B, G, L, N) copy, so that one step's N values are contiguous, and the state entering
// each chunk is saved as a checkpoint for the backward.
//
// Backward: the adjoint recurrence, reverse in time. With dy~_t = dy_t silu(z_t) and g_t = dL/dh_t,
//   g_t = C_t dy~_t + dA_{t+1} g_{t+1},   g_{L-1} = C_{L-1} dy~_{L-1} + dlast
// and, from h_t = dA_t h_{t-1} + dBu_t (sums over n written <.,.>):
//   dC_t       += dy~_t h_t                           (summed over the channels of a group)
//   ddelta'_t  += <g_t h_{t-1} dA_t, A>               (through dA_t = exp(delta' A))
//   dA         += g_t h_{t-1} dA_t delta'_t
//   Mamba's hold, dBu = delta' B u:  dB_t += g_t delta'_t u_t,  du_t += delta'_t <g_t, B_t>,
//                                    ddelta'_t += u_t <g_t, B_t>
//   exact hold, dBu = hold B u, hold = delta' exprel(delta' A), d hold/d delta' = dA,
//               d hold/dA = delta'^2 exprel'(delta' A):
//       dB_t += g_t hold u_t,  du_t += <g_t hold, B_t>,  ddelta'_t += u_t <g_t B_t, dA_t>,
//       dA += g_t B_t u_t delta'^2 exprel'(delta' A)
//   dh0 = dA_0 g_0,  dD += dy~_t u_t,  du_t += dy~_t D,  dz_t = dy_t y~_t silu'(z_t),
//   ddelta_t = ddelta'_t softplus'(delta_t + bias),  dbias += ddelta_t.
// Chunks are visited last to first; a chunk's states are first recomputed from its checkpoint.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <vector>

#include "ops/cpu/fast_math.h"
#include "ops/cpu/parallel.h"
#include "ops/cpu/selective_scan.h"

namespace mg::cpu {

namespace {

constexpr int64_t K = kScanChunk;
constexpr int64_t kLanes = kScanLanes;
// Below about this many values of work a parallel task is not worth its start-up: parallel_for
// grains are sized to it (results never depend on the grain).
constexpr int64_t kParallelWork = 1 << 15;

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

// exprel(x) = (e^x - 1) / x and exprel'(x) = (e^x - exprel(x)) / x, given ex = e^x. Near 0 both
// closed forms cancel (and divide by ~0), so |x| < 0.5 uses the Taylor series instead:
//   exprel(x) = sum_k x^k / (k+1)!,   exprel'(x) = sum_k (k+1) x^k / (k+2)!
// (9 terms reach float precision there, 16 double). Both sides are computed and one is selected.
constexpr int kSeriesTerms = 16;
constexpr std::array<double, kSeriesTerms> exprel_coefficients(bool derivative) {
  std::array<double, kSeriesTerms> c{};
  double factorial = derivative ? 2.0 : 1.0;  // (k+2)! or (k+1)! at k = 0
  for (int k = 0; k < kSeriesTerms; ++k) {
    c[k] = (derivative ? k + 1 : 1) / factorial;
    factorial *= derivative ? k + 3 : k + 2;
  }
  return c;
}
constexpr auto kExprel = exprel_coefficients(false);
constexpr auto kExprelDerivative = exprel_coefficients(true);

template <class T>
inline T taylor(const std::array<double, kSeriesTerms>& c, T x) {
  constexpr int kTerms = sizeof(T) == 4 ? 9 : kSeriesTerms;
  T p = T(c[kTerms - 1]);
  for (int k = kTerms - 2; k >= 0; --k) p = p * x + T(c[k]);
  return p;
}
template <class T>
inline T exprel(T x, T ex) {
  bool small = std::abs(x) < T(0.5);
  T closed = (ex - T(1)) / (small ? T(1) : x);
  return small ? taylor(kExprel, x) : closed;
}
template <class T>
inline T exprel_derivative(T x, T ex) {
  bool small = std::abs(x) < T(0.5);
  T closed = (ex - exprel(x, ex)) / (small ? T(1) : x);
  return small ? taylor(kExprelDerivative, x) : closed;
}

// Sums over the state lanes. Each step of a block produces 16 terms whose sum is needed (y~_t
// needs <C_t, h_t>); a step writes its terms as one row of a (steps, 16) tile, and the rows are
// summed afterwards, 16 at a time, by a transpose-and-add tree: every level adds the two halves
// of each row while packing two rows into one vector, so 16 rows take 45 vector instructions
// (~3 a row) and the sums come out as one vector, where summing each row alone takes 8 a row and
// plain loops compile worse still (a sequential sum, or spills). Written with GCC/Clang vector
// types and __builtin_shufflevector; the order of the additions is fixed, so results are too.
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

// ---- Layout

// A padded to (D, Np) and Bm, Cm transposed to (B, G, L, Np), with zeros in lanes n >= N.
template <class T>
struct TimeMajor {
  int64_t Np;
  std::vector<T> A, Bm, Cm;
};

template <class T>
std::vector<T> to_time_major(const T* x, int64_t BG, int64_t N, int64_t L, int64_t Np) {  // x: (BG, N, L)
  std::vector<T> out(BG * L * Np, T(0));
  const int64_t grain = std::max<int64_t>(1, kParallelWork / std::max<int64_t>(1, N * L));
  parallel_for(0, BG, grain, [&](int64_t begin, int64_t end) {
    for (int64_t bg = begin; bg < end; ++bg)
      for (int64_t n = 0; n < N; ++n)
        for (int64_t t = 0; t < L; ++t) out[(bg * L + t) * Np + n] = x[(bg * N + n) * L + t];
  });
  return out;
}

template <class T>
TimeMajor<T> make_time_major(const ScanInputs<T>& in) {
  const ScanSizes& s = in.size;
  TimeMajor<T> tm;
  tm.Np = scan_padded_dstate(s.dstate);
  tm.A.assign(s.dim * tm.Np, T(0));
  for (int64_t d = 0; d < s.dim; ++d)
    for (int64_t n = 0; n < s.dstate; ++n) tm.A[d * tm.Np + n] = in.A[d * s.dstate + n];
  tm.Bm = to_time_major(in.Bm, s.batch * s.groups, s.dstate, s.seqlen, tm.Np);
  tm.Cm = to_time_major(in.Cm, s.batch * s.groups, s.dstate, s.seqlen, tm.Np);
  return tm;
}

// ---- One chunk of one channel

// Per-step scalars of one chunk of one channel, computed in loops over t that vectorize.
template <class T>
struct ChunkScalars {
  const T* u;       // u_t of the chunk (len)
  T delta[K];       // delta'_t
  T drive[K];       // delta'_t u_t (Mamba's hold) or u_t (exact hold)
  T y[K];           // <C_t, h_t>, summed over the state blocks
  // backward only
  T dy[K];          // dy~_t = dy_t silu(z_t)
  T ddelta[K];      // dL/d delta'_t
  T du[K];          // dL/du_t
  // Per-step, per-lane terms of sums over n (rows t, kLanes columns; see add_row_sums).
  T terms[2][K * kLanes];
};

template <class T>
void compute_chunk_scalars(const ScanInputs<T>& in, int64_t bd, int64_t t0, int64_t len, ChunkScalars<T>& s) {
  const int64_t L = in.size.seqlen;
  const T* delta = in.delta + bd * L + t0;
  const T bias = in.delta_bias ? in.delta_bias[bd % in.size.dim] : T(0);
  s.u = in.u + bd * L + t0;
  if (in.delta_softplus)
    for (int64_t t = 0; t < len; ++t) s.delta[t] = softplus(delta[t] + bias);
  else
    for (int64_t t = 0; t < len; ++t) s.delta[t] = delta[t] + bias;
  if (in.exact_zoh_b)
    for (int64_t t = 0; t < len; ++t) s.drive[t] = s.u[t];
  else
    for (int64_t t = 0; t < len; ++t) s.drive[t] = s.delta[t] * s.u[t];
  std::fill(s.y, s.y + len, T(0));
}

// One block of kLanes lanes forward through one chunk, from state h (kLanes, updated in place):
//   h_t = dA_t h_{t-1} + drive_t hold_t B_t,   s.y_t += <C_t, h_t>
// A: (kLanes); Bt, Ct: (len, Np) from the block's first lane. With kRecord (the backward's
// recompute) also stores h_t in states row t + 1 and dA_t in decays row t (both (.., Np)).
template <class T, bool kExact, bool kRecord>
void scan_block(const T* A, const T* Bt, const T* Ct, int64_t Np, int64_t len, ChunkScalars<T>& s, T* h_io,
                T* states, T* decays) {
  T h[kLanes];
  std::copy(h_io, h_io + kLanes, h);
  for (int64_t t = 0; t < len; ++t) {
    const T dt = s.delta[t], drive = s.drive[t];
    const T* B = Bt + t * Np;
    const T* C = Ct + t * Np;
    T* out = s.terms[0] + t * kLanes;  // C_t h_t, lane by lane
#pragma omp simd
    for (int64_t k = 0; k < kLanes; ++k) {
      const T dA = fast_exp(dt * A[k]);
      const T hold = kExact ? dt * exprel(dt * A[k], dA) : T(1);
      h[k] = dA * h[k] + drive * hold * B[k];
      out[k] = C[k] * h[k];
      if constexpr (kRecord) {
        states[(t + 1) * Np + k] = h[k];
        decays[t * Np + k] = dA;
      }
    }
  }
  add_row_sums(s.terms[0], len, s.y);
  std::copy(h, h + kLanes, h_io);
}

// One block of lanes backward through one chunk: g_t = carry + C_t dy~_t, the step's gradients
// (see the top of the file), then carry = dA_t g_t. carry and dA_acc: (kLanes), updated in place;
// dBt, dCt: (len, Np) partial sums; states, decays as recorded by scan_block.
template <class T, bool kExact>
void adjoint_block(const T* A, const T* Bt, const T* Ct, const T* states, const T* decays, int64_t Np, int64_t len,
                   ChunkScalars<T>& s, T* dBt, T* dCt, T* carry_io, T* dA_io) {
  T carry[kLanes], dA_acc[kLanes];
  std::copy(carry_io, carry_io + kLanes, carry);
  std::copy(dA_io, dA_io + kLanes, dA_acc);
  for (int64_t t = len - 1; t >= 0; --t) {
    const T dt = s.delta[t], drive = s.drive[t], dy = s.dy[t], u = s.u[t];
    const T *B = Bt + t * Np, *C = Ct + t * Np, *h = states + (t + 1) * Np, *h_prev = states + t * Np;
    const T* dA = decays + t * Np;
    T* dB = dBt + t * Np;
    T* dC = dCt + t * Np;
    T* to_delta = s.terms[0] + t * kLanes;  // lane terms of ddelta'_t
    T* to_u = s.terms[1] + t * kLanes;      // lane terms of du_t
#pragma omp simd
    for (int64_t k = 0; k < kLanes; ++k) {
      const T g = carry[k] + C[k] * dy;
      dC[k] += dy * h[k];
      const T g_decay = g * h_prev[k] * dA[k];  // dL/d(dA_t) dA_t
      dA_acc[k] += g_decay * dt;
      if constexpr (!kExact) {
        dB[k] += g * drive;
        to_delta[k] = g_decay * A[k] + u * g * B[k];
        to_u[k] = dt * g * B[k];
      } else {
        const T x = dt * A[k], e = exprel(x, dA[k]), gB = g * B[k];
        dB[k] += g * dt * e * drive;
        to_delta[k] = g_decay * A[k] + u * gB * dA[k];
        to_u[k] = gB * dt * e;
        dA_acc[k] += gB * drive * dt * dt * exprel_derivative(x, dA[k]);
      }
      carry[k] = dA[k] * g;
    }
  }
  add_row_sums(s.terms[0], len, s.ddelta);
  add_row_sums(s.terms[1], len, s.du);
  std::copy(carry, carry + kLanes, carry_io);
  std::copy(dA_acc, dA_acc + kLanes, dA_io);
}

// ---- One channel, forward

// Asks for the cache lines of the (B, D, L) rows x[t0 .. t0 + len) of one channel (nullptr: none)
// before they are needed. Each chunk reads only 256 bytes of each row between long stretches of
// arithmetic, so the hardware prefetcher falls behind (and the backward walks the chunks in
// reverse); without this the first loads of each chunk wait on L3 or memory.
template <class T>
void prefetch_rows(std::initializer_list<const T*> rows, int64_t t0, int64_t len) {
  for (const T* row : rows)
    if (row)
      for (int64_t t = 0; t < len; t += 64 / sizeof(T)) __builtin_prefetch(row + t0 + t);
}

// y_t = y~_t silu(z_t), y~_t = <C_t, h_t> + D u_t, for the steps of one chunk.
template <class T>
void write_outputs(const ScanInputs<T>& in, int64_t bd, int64_t t0, int64_t len, const ChunkScalars<T>& s, T* y) {
  const int64_t L = in.size.seqlen;
  const T D = in.D_skip ? in.D_skip[bd % in.size.dim] : T(0);
  T* out = y + bd * L + t0;
  for (int64_t t = 0; t < len; ++t) out[t] = s.y[t] + D * s.u[t];
  if (in.z) {
    const T* z = in.z + bd * L + t0;
    for (int64_t t = 0; t < len; ++t) out[t] *= fast_silu(z[t]);
  }
}

// Channel bd = b D + d through the whole sequence. h: (Np) scratch.
template <class T, bool kExact>
void forward_channel(const ScanInputs<T>& in, const TimeMajor<T>& tm, int64_t bd, T* y, T* last_state, T* checkpoints,
                     T* h, ChunkScalars<T>& s) {
  const ScanSizes& size = in.size;
  const int64_t N = size.dstate, L = size.seqlen, Np = tm.Np, d = bd % size.dim;
  const int64_t bg = bd / size.dim * size.groups + d / size.channels_per_group();
  std::fill(h, h + Np, T(0));
  if (in.h0) std::copy(in.h0 + bd * N, in.h0 + (bd + 1) * N, h);
  const int64_t row = bd * L;
  for (int64_t c = 0, t0 = 0; t0 < L; ++c, t0 += K) {
    const int64_t len = std::min(K, L - t0);
    if (t0 + K < L) {
      const T* z = in.z ? in.z + row : nullptr;
      prefetch_rows({in.u + row, in.delta + row, z, static_cast<const T*>(y + row)}, t0 + K, std::min(K, L - t0 - K));
    }
    if (checkpoints) std::copy(h, h + Np, checkpoints + (bd * scan_chunk_count(L) + c) * Np);
    compute_chunk_scalars(in, bd, t0, len, s);
    for (int64_t n0 = 0; n0 < Np; n0 += kLanes) {
      const int64_t at = (bg * L + t0) * Np + n0;
      scan_block<T, kExact, false>(&tm.A[d * Np + n0], &tm.Bm[at], &tm.Cm[at], Np, len, s, h + n0, nullptr, nullptr);
    }
    write_outputs(in, bd, t0, len, s, y);
  }
  std::copy(h, h + N, last_state + bd * N);  // after reading h0: last_state may alias it
}

// ---- One channel, backward

// The gate and the skip, for one chunk: from dy_t (nullptr: zero),
//   dy~_t = dy_t silu(z_t),  dz_t = dy_t y~_t silu'(z_t),  silu'(z) = sigmoid(z) (1 + z (1 - sigmoid(z))),
//   du_t = dy~_t D  (the adjoint adds the scan's part),  returns the chunk's dD = sum_t dy~_t u_t.
template <class T>
T backward_gate_and_skip(const ScanInputs<T>& in, int64_t bd, int64_t t0, int64_t len, const T* dy_all, T* dz_all,
                         ChunkScalars<T>& s) {
  const int64_t L = in.size.seqlen;
  const T D = in.D_skip ? in.D_skip[bd % in.size.dim] : T(0);
  T* dz = dz_all ? dz_all + bd * L + t0 : nullptr;
  std::fill(s.ddelta, s.ddelta + len, T(0));
  if (!dy_all) {
    std::fill(s.dy, s.dy + len, T(0));
    std::fill(s.du, s.du + len, T(0));
    if (dz) std::fill(dz, dz + len, T(0));
    return T(0);
  }
  const T* dy = dy_all + bd * L + t0;
  if (in.z) {
    const T* z = in.z + bd * L + t0;
    for (int64_t t = 0; t < len; ++t) {
      const T sig = fast_sigmoid(z[t]), y_tilde = s.y[t] + D * s.u[t];
      dz[t] = dy[t] * y_tilde * sig * (T(1) + z[t] * (T(1) - sig));
      s.dy[t] = dy[t] * z[t] * sig;
    }
  } else {
    std::copy(dy, dy + len, s.dy);
  }
  T dD_terms[K];
  for (int64_t t = 0; t < len; ++t) {
    dD_terms[t] = s.dy[t] * s.u[t];
    s.du[t] = s.dy[t] * D;
  }
  return sum_steps(dD_terms, len);
}

// du and ddelta of one chunk (ddelta_t = ddelta'_t softplus'(delta_t + bias)); returns their
// contribution to dbias, sum_t ddelta_t.
template <class T>
T write_input_gradients(const ScanInputs<T>& in, int64_t bd, int64_t t0, int64_t len, const ChunkScalars<T>& s,
                        const ScanGrads<T>& grads) {
  const int64_t L = in.size.seqlen;
  const T* delta = in.delta + bd * L + t0;
  const T bias = in.delta_bias ? in.delta_bias[bd % in.size.dim] : T(0);
  T *ddelta = grads.ddelta + bd * L + t0, *du = grads.du + bd * L + t0;
  if (in.delta_softplus)
    for (int64_t t = 0; t < len; ++t) ddelta[t] = s.ddelta[t] * softplus_derivative(delta[t] + bias);
  else
    std::copy(s.ddelta, s.ddelta + len, ddelta);
  std::copy(s.du, s.du + len, du);
  return sum_steps(ddelta, len);
}

// A backward task's scratch, reused across its channels.
template <class T>
struct ChannelScratch {
  explicit ChannelScratch(int64_t Np) : states((K + 1) * Np), decays(K * Np), h(Np), carry(Np) {}
  std::vector<T> states;  // (K + 1, Np): row 0 the chunk's checkpoint h_{t0-1}, row t + 1 h_{t0+t}
  std::vector<T> decays;  // (K, Np): dA_t
  std::vector<T> h, carry;  // (Np): the recompute's state; dA_{t+1} g_{t+1}
  ChunkScalars<T> s;
};

// Per-channel sums over time that the caller reduces over the batch, in order.
template <class T>
struct ChannelSums {
  T* dA;  // (Np)
  T dD = 0, dbias = 0;
};

// Channel bd backward through the whole sequence, chunks last to first. Adds its dBm, dCm into
// dB_part, dC_part (L, Np), the sums of its slice of channels.
template <class T, bool kExact>
void backward_channel(const ScanInputs<T>& in, const TimeMajor<T>& tm, int64_t bd, const T* checkpoints, const T* dy,
                      const T* dlast, const ScanGrads<T>& grads, T* dB_part, T* dC_part, ChannelScratch<T>& w,
                      ChannelSums<T>& sums) {
  const ScanSizes& size = in.size;
  const int64_t N = size.dstate, L = size.seqlen, Np = tm.Np, d = bd % size.dim, chunks = scan_chunk_count(L);
  const int64_t bg = bd / size.dim * size.groups + d / size.channels_per_group();
  ChunkScalars<T>& s = w.s;
  T *carry = w.carry.data(), *h = w.h.data(), *states = w.states.data(), *decays = w.decays.data();
  std::fill(carry, carry + Np, T(0));
  if (dlast) std::copy(dlast + bd * N, dlast + (bd + 1) * N, carry);  // g_{L-1} before C dy~ is added
  std::fill(sums.dA, sums.dA + Np, T(0));
  const int64_t row = bd * L;
  for (int64_t c = chunks - 1; c >= 0; --c) {
    const int64_t t0 = c * K, len = std::min(K, L - t0);
    if (c > 0) {
      auto at = [&](const T* x) { return x ? x + row : nullptr; };
      prefetch_rows({at(in.u), at(in.delta), at(in.z), at(dy)}, t0 - K, K);
      prefetch_rows<T>({at(grads.du), at(grads.ddelta), at(grads.dz)}, t0 - K, K);
    }
    compute_chunk_scalars(in, bd, t0, len, s);
    // 1. The chunk's states, recomputed forward from its checkpoint.
    const T* checkpoint = checkpoints + (bd * chunks + c) * Np;
    std::copy(checkpoint, checkpoint + Np, states);
    std::copy(checkpoint, checkpoint + Np, h);
    for (int64_t n0 = 0; n0 < Np; n0 += kLanes) {
      const int64_t at = (bg * L + t0) * Np + n0;
      scan_block<T, kExact, true>(&tm.A[d * Np + n0], &tm.Bm[at], &tm.Cm[at], Np, len, s, h + n0, states + n0,
                                  decays + n0);
    }
    // 2. The gate and the skip, then 3. the adjoint recurrence backward through the chunk.
    sums.dD += backward_gate_and_skip(in, bd, t0, len, dy, grads.dz, s);
    for (int64_t n0 = 0; n0 < Np; n0 += kLanes) {
      const int64_t at = (bg * L + t0) * Np + n0;
      adjoint_block<T, kExact>(&tm.A[d * Np + n0], &tm.Bm[at], &tm.Cm[at], states + n0, decays + n0, Np, len, s,
                               dB_part + t0 * Np + n0, dC_part + t0 * Np + n0, carry + n0, sums.dA + n0);
    }
    // 4. Through the softplus and the bias.
    sums.dbias += write_input_gradients(in, bd, t0, len, s, grads);
  }
  if (grads.dh0) std::copy(carry, carry + N, grads.dh0 + bd * N);  // dh0 = dA_0 g_0
}

// out (BG, N, L) = sum over slices of part (BG, slices, L, Np), the slices added in order.
template <class T>
void sum_slices(const std::vector<T>& part, int64_t BG, int64_t slices, int64_t N, int64_t L, int64_t Np, T* out) {
  const int64_t grain = std::max<int64_t>(1, kParallelWork / std::max<int64_t>(1, slices * L));
  parallel_for(0, BG * N, grain, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t bg = row / N, n = row % N;
      for (int64_t t = 0; t < L; ++t) {
        T acc = 0;
        for (int64_t sl = 0; sl < slices; ++sl) acc += part[((bg * slices + sl) * L + t) * Np + n];
        out[row * L + t] = acc;
      }
    }
  });
}

}  // namespace

template <class T>
void selective_scan_forward_cpu(const ScanInputs<T>& in, T* y, T* last_state, T* checkpoints) {
  const ScanSizes& size = in.size;
  const TimeMajor<T> tm = make_time_major(in);
  // Channels are independent; a task takes several when L N is small (the recurrent step).
  const int64_t grain = std::max<int64_t>(1, kParallelWork / std::max<int64_t>(1, size.seqlen * tm.Np));
  parallel_for(0, size.batch * size.dim, grain, [&](int64_t begin, int64_t end) {
    std::vector<T> h(tm.Np);
    ChunkScalars<T> s;
    for (int64_t bd = begin; bd < end; ++bd) {
      if (in.exact_zoh_b) forward_channel<T, true>(in, tm, bd, y, last_state, checkpoints, h.data(), s);
      else forward_channel<T, false>(in, tm, bd, y, last_state, checkpoints, h.data(), s);
    }
  });
}

template <class T>
void selective_scan_backward_cpu(const ScanInputs<T>& in, const T* checkpoints, const T* dy, const T* dlast,
                                 const ScanGrads<T>& grads) {
  const ScanSizes& size = in.size;
  const int64_t B = size.batch, D = size.dim, G = size.groups, N = size.dstate, L = size.seqlen;
  const int64_t DG = size.channels_per_group();
  const TimeMajor<T> tm = make_time_major(in);
  const int64_t Np = tm.Np;
  // Determinism: every output is owned by one task, and sums run in a fixed order. The channels of
  // each group are cut into `slices` (a function of the shapes only, never of the thread count);
  // task (b, g, slice) walks its channels in order, writes their du, ddelta, dz, dh0, and adds
  // their dBm, dCm into its own partial sums (B, G, slices, L, Np), summed over slices at the end.
  // dA, dD, dbias are kept per (b, d) and summed over b at the end.
  const int64_t slices = std::clamp<int64_t>(DG / 64, 1, 16), per_slice = (DG + slices - 1) / slices;
  std::vector<T> dB_part(B * G * slices * L * Np, T(0)), dC_part(dB_part.size(), T(0));
  std::vector<T> dA_part(B * D * Np), dD_part(B * D), dbias_part(B * D);
  const int64_t grain = std::max<int64_t>(1, kParallelWork / std::max<int64_t>(1, per_slice * L * Np));
  parallel_for(0, B * G * slices, grain, [&](int64_t begin, int64_t end) {
    ChannelScratch<T> w(Np);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / (G * slices), g = task / slices % G, slice = task % slices;
      T* dB = &dB_part[task * L * Np];
      T* dC = &dC_part[task * L * Np];
      for (int64_t d = g * DG + slice * per_slice; d < g * DG + std::min(DG, (slice + 1) * per_slice); ++d) {
        const int64_t bd = b * D + d;
        ChannelSums<T> sums{&dA_part[bd * Np]};
        if (in.exact_zoh_b) backward_channel<T, true>(in, tm, bd, checkpoints, dy, dlast, grads, dB, dC, w, sums);
        else backward_channel<T, false>(in, tm, bd, checkpoints, dy, dlast, grads, dB, dC, w, sums);
        dD_part[bd] = sums.dD;
        dbias_part[bd] = sums.dbias;
      }
    }
  });
  sum_slices(dB_part, B * G, slices, N, L, Np, grads.dBm);
  sum_slices(dC_part, B * G, slices, N, L, Np, grads.dCm);
  for (int64_t d = 0; d < D; ++d) {
    for (int64_t n = 0; n < N; ++n) {
      T acc = 0;
      for (int64_t b = 0; b < B; ++b) acc += dA_part[(b * D + d) * Np + n];
      grads.dA[d * N + n] = acc;
    }
    T dD = 0, dbias = 0;
    for (int64_t b = 0; b < B; ++b) {
      dD += dD_part[b * D + d];
      dbias += dbias_part[b * D + d];
    }
    if (grads.dD_skip) grads.dD_skip[d] = dD;
    if (grads.ddelta_bias) grads.ddelta_bias[d] = dbias;
  }
}

template void selective_scan_forward_cpu<float>(const ScanInputs<float>&, float*, float*, float*);
template void selective_scan_forward_cpu<double>(const ScanInputs<double>&, double*, double*, double*);
template void selective_scan_backward_cpu<float>(const ScanInputs<float>&, const float*, const float*, const float*,
                                                 const ScanGrads<float>&);
template void selective_scan_backward_cpu<double>(const ScanInputs<double>&, const double*, const double*,
                                                  const double*, const ScanGrads<double>&);

}  // namespace mg::cpu
