// The fused CPU selective scan's backward kernel: the adjoint recurrence, reverse in time, with
// each chunk's states recomputed from the forward's checkpoints. Its math is written out at the top
// of ops/cpu/selective_scan_forward.cpp, after the forward's (whose names it uses).
#include <algorithm>
#include <vector>

#include "ops/cpu/fast_math.h"
#include "ops/cpu/parallel.h"
#include "ops/cpu/selective_scan.h"
#include "ops/cpu/selective_scan_chunk.h"
#include "ops/cpu/selective_scan_math.h"

namespace mg::cpu {

using namespace scan_detail;

namespace {

// ---- One chunk of one channel

// One block of lanes backward through one chunk: g_t = carry + C_t dy~_t, the step's gradients
// (see the top of ops/cpu/selective_scan_forward.cpp), then carry = dA_t g_t. carry and dA_acc:
// (kLanes), updated in place; dBt, dCt: (len, Np) partial sums; states, decays as recorded by
// scan_block.
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

// ---- One channel

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

template void selective_scan_backward_cpu<float>(const ScanInputs<float>&, const float*, const float*, const float*,
                                                 const ScanGrads<float>&);
template void selective_scan_backward_cpu<double>(const ScanInputs<double>&, const double*, const double*,
                                                  const double*, const ScanGrads<double>&);

}  // namespace mg::cpu
