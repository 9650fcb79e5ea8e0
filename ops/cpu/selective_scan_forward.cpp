// The fused CPU selective scan's forward kernel, and the algorithm of both its kernels (the math:
// ops/selective_scan.h; the backward: ops/cpu/selective_scan_backward.cpp; the pieces both share:
// ops/cpu/selective_scan_chunk.h and ops/cpu/selective_scan_math.h).
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
#include <vector>

#include "ops/cpu/fast_math.h"
#include "ops/cpu/parallel.h"
#include "ops/cpu/selective_scan.h"
#include "ops/cpu/selective_scan_chunk.h"
#include "ops/cpu/selective_scan_math.h"

namespace mg::cpu {

using namespace scan_detail;

namespace {

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

template void selective_scan_forward_cpu<float>(const ScanInputs<float>&, float*, float*, float*);
template void selective_scan_forward_cpu<double>(const ScanInputs<double>&, double*, double*, double*);

}  // namespace mg::cpu
