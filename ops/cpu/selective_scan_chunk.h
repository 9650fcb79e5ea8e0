#pragma once
// The pieces of the CPU selective scan that its forward and its backward both run (the backward
// recomputes each chunk's states forward first): the time-major copy of A, Bm and Cm, a chunk's
// per-step scalars, one block of lanes forward through one chunk, and the prefetch of a chunk's
// rows. The algorithm is described at the top of ops/cpu/selective_scan_forward.cpp.
#include <algorithm>
#include <initializer_list>
#include <vector>

#include "ops/cpu/fast_math.h"
#include "ops/cpu/parallel.h"
#include "ops/cpu/selective_scan.h"
#include "ops/cpu/selective_scan_math.h"

namespace mg::cpu::scan_detail {

namespace {  // internal linkage: see selective_scan_math.h

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

}  // namespace

}  // namespace mg::cpu::scan_detail
