// The selective scan's backward on the GPU (the design is at the top of cuda/selective_scan.cu,
// the math in ops/selective_scan.h, the CPU twin in ops/cpu/selective_scan_backward.cpp).
#include "cuda/selective_scan_common.cuh"

namespace mg::cuda {

namespace {

// The split backward's first pass (see the top), on the forward's plan: for each segment but the
// first, the adjoint recurrence alone from zero at the segment's end back to its start,
//   carry := dA_t (carry + gy_t C_t),   gy = dy silu(z) (as the backward's staging computes it),
// written to seg.end, with the segment's sum of delta' to seg.dsum. Shared: delta', gy [dc][kPitch],
// C [N][kPitch].
template <class T, int LN, int SPT>
__global__ void scan_adjoint_kernel(ScanInputs<T> in, const T* dy, int dc, int64_t tiles, SegmentArgs<T> seg) {
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  T* dt_s = reinterpret_cast<T*>(shared_bytes);
  T* gy_s = dt_s + dc * kPitch;
  T* C_s = gy_s + dc * kPitch;
  const ScanSizes& s = in.size;
  const BlockPlace p = place_block(s, dc, tiles, seg.count, seg.chunks);
  if (p.seg == 0) return;  // the whole block: before any barrier
  const int c = threadIdx.x / LN, lane = threadIdx.x % LN;
  const bool active = c < p.nch;
  const int64_t d = p.d0 + c, L = s.seqlen;
  const int N = static_cast<int>(s.dstate);
  T a2[SPT], carry[SPT];
#pragma unroll
  for (int k = 0; k < SPT; ++k) {
    const int n = lane + k * LN;
    a2[k] = active && n < N ? in.A[d * N + n] * kLog2e<T> : T(0);
    carry[k] = T(0);
  }
  T dsum = T(0);
  for (int64_t chunk = p.c_end - 1; chunk >= p.c_begin; --chunk) {
    const int64_t t0 = chunk * kChunk;
    const int len = static_cast<int>(min(static_cast<int64_t>(kChunk), L - t0));
    for (int i = threadIdx.x; i < p.nch * kChunk; i += blockDim.x) {
      const int cc = i / kChunk, t = i % kChunk;
      if (t >= len) continue;
      const int64_t dd = p.d0 + cc, idx = (p.b * s.dim + dd) * L + t0 + t;
      const T raw = in.delta[idx] + (in.delta_bias ? in.delta_bias[dd] : T(0));
      dt_s[cc * kPitch + t] = in.delta_softplus ? dsoftplus(raw) : raw;
      T gy = dy ? dy[idx] : T(0);
      if (in.z) gy = gy * in.z[idx] * dsigmoid(in.z[idx]);
      gy_s[cc * kPitch + t] = gy;
    }
    for (int i = threadIdx.x; i < N * kChunk; i += blockDim.x) {
      const int n = i / kChunk, t = i % kChunk;
      if (t < len) C_s[n * kPitch + t] = in.Cm[((p.b * s.groups + p.g) * s.dstate + n) * L + t0 + t];
    }
    __syncthreads();
    if (active) {
#pragma unroll
      for (int t = kChunk - 1; t >= 0; --t) {
        if (t >= len) continue;
        const T dt = dt_s[c * kPitch + t], gy = gy_s[c * kPitch + t];
        dsum += dt;
#pragma unroll
        for (int k = 0; k < SPT; ++k) {
          const int n = lane + k * LN;
          if (n < N) carry[k] = exp2_ftz(dt * a2[k]) * (carry[k] + gy * C_s[n * kPitch + t]);
        }
      }
    }
    __syncthreads();  // the next chunk restages the arrays
  }
  if (!active) return;
#pragma unroll
  for (int k = 0; k < SPT; ++k) {
    const int n = lane + k * LN;
    if (n < N) seg.end[(p.item * s.dim + d) * N + n] = carry[k];
  }
  if (lane == 0) seg.dsum[p.item * s.dim + d] = dsum;
}

// The workspace of the backward: per-tile sums of dB and dC over the tile's channels
// (B, G, tiles, 2, N, L), then per-(batch, segment) dA (B S, D, N), dD_skip (B S, D),
// ddelta_bias (B S, D); when split (S > 1), the segments' adjoints (SegmentArgs: end, start
// (B S, D, N) and dsum (B S, D)).
struct Workspace {
  int64_t bc, dA, dD, dbias, seg_end, seg_start, seg_dsum, total;
};
Workspace workspace_layout(const ScanSizes& s, int64_t tiles, int64_t seg_count) {
  Workspace w;
  const int64_t items = s.batch * seg_count, split = seg_count > 1 ? items : 0;
  w.bc = 0;
  w.dA = s.batch * s.groups * tiles * 2 * s.dstate * s.seqlen;
  w.dD = w.dA + items * s.dim * s.dstate;
  w.dbias = w.dD + items * s.dim;
  w.seg_end = w.dbias + items * s.dim;
  w.seg_start = w.seg_end + split * s.dim * s.dstate;
  w.seg_dsum = w.seg_start + split * s.dim * s.dstate;
  w.total = w.seg_dsum + split * s.dim;
  return w;
}

__host__ __device__ constexpr int log2_of(int x) { return x <= 1 ? 0 : 1 + log2_of(x / 2); }

// The backward's sums across lanes, as reduce-scatters: at each exchange a lane sends half of the
// values it holds and keeps the other half (chosen by its lane bit), so each exchange moves one
// value per pair of sums instead of one per sum, and every lane ends with distinct sums to store.
// Every sum is added in a fixed order (own + partner's, exchange by exchange): the same bits on
// every run.
//
// Over the channels of a warp (lane bits log2(LN) .. 4, exchanges at offsets LN, 2 LN, .. 16) of
// b[k], c[k], the dB_t and dC_t terms of the lane's states. Register k of a lane holds the state
// n = lane + LN (k ^ perm) (channel_perm below): the exchange that splits the k range then
// needs no select, since the partner holds in its upper half the states this lane holds in its
// lower half. With the k range down to one register, an exchange splits b from c (two selects),
// and further exchanges are plain butterflies (their lanes end with equal sums; one of them
// stores). ChannelSums says what a lane holds at the end.
template <int LN, int SPT>
struct ChannelSums {
  static constexpr int kStages = log2_of(32 / LN);  // exchanges over a warp's channels
  static constexpr int kSplitK = kStages < log2_of(SPT) ? kStages : log2_of(SPT);  // those splitting k
  static constexpr int kKeep = SPT >> kSplitK;  // registers of each kind left per lane
  static constexpr bool kSplitKind = kStages > kSplitK;  // then one value is left: b or c
};

// The order of the lane's states in its registers (see above): bit (P - 1 - s) of k flipped by
// bit s of the lane's channel in its warp, for the exchanges s that split k.
template <int LN, int SPT>
__device__ inline int channel_perm(int lane_in_warp) {
  constexpr int P = log2_of(SPT);
  int perm = 0;
#pragma unroll
  for (int s = 0; s < ChannelSums<LN, SPT>::kSplitK; ++s) perm |= ((lane_in_warp / LN >> s) & 1) << (P - 1 - s);
  return perm;
}

// Leaves b[0 .. kKeep), c[0 .. kKeep) summed over the warp's channels, or (kSplitKind) returns the
// one sum the lane keeps: c[0]'s where bit kSplitK of its channel in the warp is set (keeps_c),
// else b[0]'s.
template <int LN, int SPT, class T>
__device__ __forceinline__ T channel_reduce_scatter(T (&b)[SPT], T (&c)[SPT], bool keeps_c) {
  using CS = ChannelSums<LN, SPT>;
#pragma unroll
  for (int s = 0; s < CS::kSplitK; ++s) {
    const int half = SPT >> (s + 1);
#pragma unroll
    for (int k = 0; k < half; ++k) {
      b[k] += __shfl_xor_sync(0xffffffffu, b[k + half], LN << s);
      c[k] += __shfl_xor_sync(0xffffffffu, c[k + half], LN << s);
    }
  }
  T v = T(0);
  if constexpr (CS::kSplitKind) {
    v = (keeps_c ? c[0] : b[0]) + __shfl_xor_sync(0xffffffffu, keeps_c ? b[0] : c[0], LN << CS::kSplitK);
#pragma unroll
    for (int s = CS::kSplitK + 1; s < CS::kStages; ++s) v += __shfl_xor_sync(0xffffffffu, v, LN << s);
  }
  return v;
}

// Over the LN lanes of one channel, of x and y: the first exchange (offset LN / 2) splits x from y,
// the rest are butterflies. Lanes below LN / 2 end with the sum of x, the others with that of y.
template <int LN, class T>
__device__ __forceinline__ T lane_reduce_scatter(T x, T y, bool keeps_y) {
  if constexpr (LN == 1) {
    return x;  // unused: a lone lane stores x and y itself
  } else {
    T v = (keeps_y ? y : x) + __shfl_xor_sync(0xffffffffu, keeps_y ? x : y, LN / 2);
#pragma unroll
    for (int offset = LN / 4; offset >= 1; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
  }
}

// One chunk's backward, per lane, on the staged chunk (always kChunk steps: a short last chunk is
// padded with steps that have delta' = 0, which leave the state and the adjoint as they are).
// EXACT: the exact zero-order hold of B (hold = delta' exprel(delta' a)), else hold = delta'.
//
// 1. The chunk's states again from its checkpoint h_in; h_0 .. h_14 go to the lane's history.
// 2. The adjoint recurrence backwards through the chunk, for each state:
//      dh_t = carry + gy_t C_t;  carry := dA_t dh_t (= dL/dh_{t-1} without the output term)
//    and the terms of the gradients (q = dA_t dh_t h_{t-1} appears in three of them):
//      dC_t += gy_t h_t;  dB_t += dh_t hold u_t;  dA += delta'_t q (+ the exact hold's term);
//      ddelta'_t += a q + u_t dh_t B_t [dA_t, exact];  du_t += dh_t hold B_t.
//    Per lane, x = sum a q (+ exact term) and y = sum dh B (hold) over its states; the kernel's
//    finish turns them into ddelta' = x + u y, du = delta' y (EXACT: x and y themselves).
template <class T, int LN, int SPT, bool EXACT>
__device__ __forceinline__ void backward_chunk(const T* ch, const T* (&Brow)[SPT], T* hist_lane, T* xy_store,
                                      T* red_store, bool stores_xy, bool stores_red, bool keeps_y, bool keeps_c,
                                      const T (&a)[SPT], const T (&a2)[SPT], const T (&h_in)[SPT], T (&carry)[SPT],
                                      T (&dA_acc)[SPT]) {
  constexpr int NP = LN * SPT;
  constexpr int kC = NP * kPitch;  // C's rows follow B's
  T h[SPT];
#pragma unroll
  for (int k = 0; k < SPT; ++k) h[k] = h_in[k];
#pragma unroll
  for (int t = 0; t < kChunk; ++t) {
    const T dt = ch[kDt * kPitch + t];
    const T dtu = ch[kDtu * kPitch + t];
#pragma unroll
    for (int k = 0; k < SPT; ++k) {
      const T dA = exp2_ftz(dt * a2[k]);
      const T Bn = Brow[k][t];
      if constexpr (EXACT) {
        h[k] = dA * h[k] + dt * dexprel(dt * a[k], dA) * Bn * ch[kU * kPitch + t];
      } else {
        h[k] = dA * h[k] + dtu * Bn;
      }
      if (t < kChunk - 1) hist_lane[(t * SPT + k) * 32] = h[k];
    }
  }
  // h[k] is now h_15; walking back, h[k] holds h_t and h_prev h_{t-1}.
#pragma unroll
  for (int t = kChunk - 1; t >= 0; --t) {
    const T gy = ch[kGy * kPitch + t], dt = ch[kDt * kPitch + t], dtu = ch[kDtu * kPitch + t];
    T x = T(0), y = T(0), sum_b[SPT], sum_c[SPT];
#pragma unroll
    for (int k = 0; k < SPT; ++k) {
      const T h_prev = t > 0 ? hist_lane[((t - 1) * SPT + k) * 32] : h_in[k];
      const T Bn = Brow[k][t], Cn = Brow[k][kC + t];
      const T dh = carry[k] + gy * Cn;
      const T dA = exp2_ftz(dt * a2[k]);
      carry[k] = dA * dh;
      const T q = carry[k] * h_prev;
      sum_c[k] = gy * h[k];
      if constexpr (EXACT) {
        const T u = ch[kU * kPitch + t];
        const T rel = dexprel(dt * a[k], dA), hold = dt * rel;
        x += a[k] * q + carry[k] * Bn * u;
        y += dh * hold * Bn;
        sum_b[k] = dh * hold * u;
        dA_acc[k] += dt * q + dh * Bn * u * dt * dt * dexprel_derivative(dt * a[k], dA);
      } else {
        x += a[k] * q;
        y += dh * Bn;
        sum_b[k] = dh * dtu;
        dA_acc[k] += dt * q;
      }
      h[k] = h_prev;
    }
    if constexpr (LN == 1) {
      if (stores_xy) {
        xy_store[t] = x;
        xy_store[(kY - kX) * kPitch + t] = y;
      }
    } else {
      const T v = lane_reduce_scatter<LN>(x, y, keeps_y);
      if (stores_xy) xy_store[t] = v;  // xy_store already points at x's or y's row
    }
    using CS = ChannelSums<LN, SPT>;
    const T v = channel_reduce_scatter<LN, SPT>(sum_b, sum_c, keeps_c);
    if constexpr (CS::kSplitKind) {
      if (stores_red) red_store[t * 2 * NP] = v;  // red_store already points at b's or c's row
    } else if (stores_red) {
#pragma unroll
      for (int k = 0; k < CS::kKeep; ++k) {  // states n = lane + LN (k ^ perm): see the kernel
        red_store[t * 2 * NP + k * LN] = sum_b[k];
        red_store[t * 2 * NP + NP + k * LN] = sum_c[k];
      }
    }
  }
}

// Threads: (dc channels x LN lanes) rounded up to whole warps; channel c of the block is
// d0 + c, its lanes' states n = lane + LN (k ^ perm), k < SPT.
// For float with 8 lanes of 1 or 2 states (N = 5 .. 16), at most 80 registers, so that three
// blocks of 256 threads fit a multiprocessor (24 warps, with the ~68 KB of shared memory each):
// unbounded, the unrolled chunk takes 109 registers (N = 16) and two blocks. (Under the bound,
// fewer lanes, with more items each to stage, would spill.)
template <class T, int LN, int SPT>
constexpr int kBackwardBlocksPerSM = sizeof(T) == 4 && LN == 8 && SPT <= 2 ? 3 : 1;

template <class T, int LN, int SPT, bool EXACT>
__global__ void __launch_bounds__(kMaxThreads, (kBackwardBlocksPerSM<T, LN, SPT>))
    scan_backward_kernel(ScanInputs<T> in, const T* checkpoints, const T* dy, const T* carry_start, ScanGrads<T> grads,
                         T* work, Workspace w, int dc, int64_t tiles, int64_t seg_count, int64_t seg_chunks) {
  const ScanSizes& s = in.size;
  const int N = static_cast<int>(s.dstate);
  const int64_t L = s.seqlen;
  constexpr int NP = LN * SPT;
  constexpr int kRow = kArrays * kPitch;  // one channel's arrays
  using CS = ChannelSums<LN, SPT>;
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  T* ch_s = reinterpret_cast<T*>(shared_bytes);  // [dc + 1][kArrays][kPitch]
  T* B_s = ch_s + (dc + 1) * kRow;               // [NP][kPitch], then C's
  T* hist = B_s + 2 * NP * kPitch;               // [warps][kChunk - 1][SPT][32]
  const int warps = blockDim.x / 32, warp = threadIdx.x / 32, lane_w = threadIdx.x % 32;
  T* red = hist + warps * (kChunk - 1) * SPT * 32;  // [warps][kChunk][2][NP]
  const int64_t values = backward_shared_values(dc, NP, SPT, warps);
  for (int i = threadIdx.x; i < values; i += blockDim.x) ch_s[i] = T(0);

  const BlockPlace p = place_block(s, dc, tiles, seg_count, seg_chunks);
  const int c = threadIdx.x / LN, lane = threadIdx.x % LN;
  const bool active = c < p.nch;
  const int64_t d = p.d0 + c;
  const int64_t chunks = (L + kChunk - 1) / kChunk;
  const T* y_saved = checkpoints + checkpoint_states_numel(s);  // <C_t, h_t> from the forward

  // The lane's places: its channel's arrays (idle lanes: the zero channel), its states' B rows,
  // its history, where it stores x or y, and which channel sums it keeps and stores.
  const T* ch = ch_s + (active ? c : dc) * kRow;
  const int perm = channel_perm<LN, SPT>(lane_w);
  int state[SPT];
  const T* Brow[SPT];
#pragma unroll
  for (int k = 0; k < SPT; ++k) {
    state[k] = lane + LN * (k ^ perm);
    Brow[k] = B_s + state[k] * kPitch;
  }
  T* hist_lane = hist + warp * (kChunk - 1) * SPT * 32 + lane_w;
  const bool keeps_y = LN > 1 && lane >= LN / 2;
  T* xy_store = ch_s + c * kRow + (keeps_y ? kY : kX) * kPitch;
  const bool stores_xy = active && (LN == 1 || lane % (LN / 2 > 0 ? LN / 2 : 1) == 0);
  const int cw = lane_w / LN;  // the lane's channel within its warp
  const bool keeps_c = CS::kSplitKind && ((cw >> CS::kSplitK) & 1);
  T* red_store = red + warp * kChunk * 2 * NP;
  bool stores_red;
  if constexpr (CS::kSplitKind) {
    red_store += (keeps_c ? NP : 0) + state[0];
    stores_red = (cw >> (CS::kSplitK + 1)) == 0;  // one of the lanes with equal sums
  } else {
    red_store += state[0];
    stores_red = true;  // rows n >= N are summed by nobody
  }

  T a[SPT], a2[SPT], carry[SPT], dA_acc[SPT], h_in[SPT];
#pragma unroll
  for (int k = 0; k < SPT; ++k) {
    const bool real = active && state[k] < N;
    a[k] = real ? in.A[d * N + state[k]] : T(0);
    a2[k] = a[k] * kLog2e<T>;
    carry[k] = real && carry_start ? carry_start[(p.item * s.dim + d) * N + state[k]] : T(0);
    dA_acc[k] = T(0);
  }
  const int64_t row = ((p.b * s.groups + p.g) * tiles + p.tile) * 2;  // this tile's rows of dB, dC sums

  // Finishes chunk `done` (the one just walked; -1: none) and stages chunk `next` (-1: none), in one
  // pass whose items (channel, t) and (n, t) are the same for both, so a thread reads its items'
  // values of `done` before it overwrites them with those of `next`. Every load of `next` is
  // issued first, so that one global-memory latency, overlapped with the finishing arithmetic,
  // is all the pass waits for. A thread's (channel, t) items: i = threadIdx.x + j blockDim.x,
  // j < kItems (blockDim.x >= LN x the channels).
  constexpr int kItems = (kChunk + LN - 1) / LN;
  auto finish_and_stage = [&](int64_t done, int64_t next) {
    const int64_t t0d = done * kChunk, t0n = next * kChunk;
    const int len_d = done >= 0 ? static_cast<int>(min(static_cast<int64_t>(kChunk), L - t0d)) : 0;
    const int len_n = next >= 0 ? static_cast<int>(min(static_cast<int64_t>(kChunk), L - t0n)) : -1;
    if (next >= 0) {
#pragma unroll
      for (int k = 0; k < SPT; ++k) {
        h_in[k] = active && state[k] < N ? checkpoints[((p.b * s.dim + d) * chunks + next) * N + state[k]] : T(0);
      }
    }
    T delta_raw[kItems], u[kItems], z[kItems], g[kItems], ysv[kItems];
#pragma unroll
    for (int j = 0; j < kItems; ++j) {
      const int i = threadIdx.x + j * blockDim.x, cc = i / kChunk, t = i % kChunk;
      const int64_t at = (p.b * s.dim + p.d0 + cc) * L + t0n + t;
      const bool load = i < p.nch * kChunk && t < len_n;
      delta_raw[j] = load ? in.delta[at] : T(0);
      u[j] = load ? in.u[at] : T(0);
      z[j] = load && in.z ? in.z[at] : T(0);
      g[j] = load && dy ? dy[at] : T(0);
      ysv[j] = load && in.z ? y_saved[at] : T(0);
    }
    for (int i = threadIdx.x; i < N * kChunk; i += blockDim.x) {
      const int n = i / kChunk, t = i % kChunk;
      const int64_t bc = ((p.b * s.groups + p.g) * s.dstate + n) * L;
      T Bv = T(0), Cv = T(0);
      if (t < len_n) {
        Bv = in.Bm[bc + t0n + t];
        Cv = in.Cm[bc + t0n + t];
      }
      if (t < len_d) {  // dB_t, dC_t of chunk `done`, summed over the block's warps in order
        T sum_b = T(0), sum_c = T(0);
        for (int v = 0; v < warps; ++v) {
          sum_b += red[(v * kChunk + t) * 2 * NP + n];
          sum_c += red[(v * kChunk + t) * 2 * NP + NP + n];
        }
        work[w.bc + (row * N + n) * L + t0d + t] = sum_b;
        work[w.bc + ((row + 1) * N + n) * L + t0d + t] = sum_c;
      }
      if (len_n >= 0) {
        B_s[n * kPitch + t] = Bv;
        B_s[(NP + n) * kPitch + t] = Cv;
      }
    }
#pragma unroll
    for (int j = 0; j < kItems; ++j) {
      const int i = threadIdx.x + j * blockDim.x, cc = i / kChunk, t = i % kChunk;
      if (i >= p.nch * kChunk) break;
      T* r = ch_s + cc * kRow;
      const int64_t dd = p.d0 + cc, base = (p.b * s.dim + dd) * L;
      const T Dd = in.D_skip ? in.D_skip[dd] : T(0);
      if (t < len_d) {  // du and ddelta of chunk `done`
        const T x = r[kX * kPitch + t], yv = r[kY * kPitch + t], gy = r[kGy * kPitch + t];
        const T du = (EXACT ? yv : r[kDt * kPitch + t] * yv) + gy * Dd;
        const T ddelta = (EXACT ? x : x + r[kU * kPitch + t] * yv) * r[kDsp * kPitch + t];
        grads.du[base + t0d + t] = du;
        grads.ddelta[base + t0d + t] = ddelta;
        r[kDbias * kPitch + t] += ddelta;
      }
      if (len_n < 0) continue;
      T dt = T(0), dsp = T(0), gy = T(0);
      if (t < len_n) {
        const T raw = delta_raw[j] + (in.delta_bias ? in.delta_bias[dd] : T(0));
        dt = in.delta_softplus ? dsoftplus(raw) : raw;
        dsp = in.delta_softplus ? softplus_grad(raw) : T(1);
        // Through the gate: y = (ypre + D u) silu(z), so gy = dy silu(z) and
        // dz = dy (ypre + D u) silu'(z), silu' = s (1 + z (1 - s)).
        gy = g[j];
        if (in.z) {
          const T sz = dsigmoid(z[j]);
          if (grads.dz) grads.dz[base + t0n + t] = g[j] * (ysv[j] + Dd * u[j]) * sz * (T(1) + z[j] * (T(1) - sz));
          gy = g[j] * z[j] * sz;
        }
        r[kDD * kPitch + t] += gy * u[j];
      }
      r[kU * kPitch + t] = u[j];
      r[kDt * kPitch + t] = dt;
      r[kDtu * kPitch + t] = dt * u[j];
      r[kDsp * kPitch + t] = dsp;
      r[kGy * kPitch + t] = gy;
    }
  };

  __syncthreads();  // the zeroed arrays
  finish_and_stage(-1, p.c_end - 1);
  __syncthreads();
  for (int64_t chunk = p.c_end - 1; chunk >= p.c_begin; --chunk) {
    backward_chunk<T, LN, SPT, EXACT>(ch, Brow, hist_lane, xy_store, red_store, stores_xy, stores_red, keeps_y,
                                      keeps_c, a, a2, h_in, carry, dA_acc);
    __syncthreads();
    finish_and_stage(chunk, chunk > p.c_begin ? chunk - 1 : -1);
    __syncthreads();
  }
  if (active) {
#pragma unroll
    for (int k = 0; k < SPT; ++k) {
      if (state[k] >= N) continue;
      // dL/dh_{-1} = dA_0 dh_0, from the first segment
      if (grads.dh0 && p.seg == 0) grads.dh0[(p.b * s.dim + d) * N + state[k]] = carry[k];
      work[w.dA + (p.item * s.dim + d) * N + state[k]] = dA_acc[k];
    }
  }
  for (int cc = threadIdx.x; cc < p.nch; cc += blockDim.x) {
    T sum_D = T(0), sum_bias = T(0);
    for (int t = 0; t < kChunk; ++t) {
      sum_D += ch_s[cc * kRow + kDD * kPitch + t];
      sum_bias += ch_s[cc * kRow + kDbias * kPitch + t];
    }
    work[w.dD + p.item * s.dim + p.d0 + cc] = sum_D;
    work[w.dbias + p.item * s.dim + p.d0 + cc] = sum_bias;
  }
}

// The second passes: each sum over tiles or batch items, in order.
template <class T>
__global__ void scan_finish_bc_kernel(ScanGrads<T> grads, const T* work, Workspace w, ScanSizes s, int64_t tiles) {
  const int64_t total = s.batch * s.groups * s.dstate * s.seqlen;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t t = i % s.seqlen, n = (i / s.seqlen) % s.dstate, bg = i / (s.seqlen * s.dstate);
    T sum_b = T(0), sum_c = T(0);
    for (int64_t tile = 0; tile < tiles; ++tile) {
      const int64_t row = (bg * tiles + tile) * 2;
      sum_b += work[w.bc + (row * s.dstate + n) * s.seqlen + t];
      sum_c += work[w.bc + ((row + 1) * s.dstate + n) * s.seqlen + t];
    }
    grads.dBm[i] = sum_b;
    grads.dCm[i] = sum_c;
  }
}

// items: batch x segments.
template <class T>
__global__ void scan_finish_batch_kernel(ScanGrads<T> grads, const T* work, Workspace w, ScanSizes s, int64_t items) {
  const int64_t DN = s.dim * s.dstate;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < DN + s.dim; i += int64_t{gridDim.x} * blockDim.x) {
    if (i < DN) {  // dA[d, n]
      T sum = T(0);
      for (int64_t b = 0; b < items; ++b) sum += work[w.dA + b * DN + i];
      grads.dA[i] = sum;
      continue;
    }
    const int64_t d = i - DN;
    T sum_D = T(0), sum_bias = T(0);
    for (int64_t b = 0; b < items; ++b) {
      sum_D += work[w.dD + b * s.dim + d];
      sum_bias += work[w.dbias + b * s.dim + d];
    }
    if (grads.dD_skip) grads.dD_skip[d] = sum_D;
    if (grads.ddelta_bias) grads.ddelta_bias[d] = sum_bias;
  }
}

}  // namespace

int64_t selective_scan_workspace_numel(const ScanSizes& s, DType dtype) {
  check_dstate(s);
  const Plan plan = make_plan(s, dtype_size(dtype), true);
  return workspace_layout(s, plan.tiles, segment_plan(s, s.batch * s.groups * plan.tiles).count).total;
}

template <class T>
void selective_scan_backward(const ScanInputs<T>& in, const T* checkpoints, const T* dy, const T* dlast,
                             const ScanGrads<T>& grads, T* workspace, int device) {
  const ScanSizes& s = in.size;
  check_dstate(s);
  if (s.batch * s.dim == 0) return;
  DeviceGuard guard(device);
  const Plan plan = make_plan(s, sizeof(T), true);  // the plan selective_scan_workspace_numel sized for
  const int64_t blocks = s.batch * s.groups * plan.tiles;
  const Segments segments = segment_plan(s, blocks);
  const Workspace w = workspace_layout(s, plan.tiles, segments.count);
  SegmentArgs<T> seg{segments.count, segments.chunks};
  if (segments.count > 1) {
    seg.end = workspace + w.seg_end;
    seg.start = workspace + w.seg_start;
    seg.dsum = workspace + w.seg_dsum;
  }
  cudaStream_t stream = current_stream();
  if (segments.count > 1) {  // the adjoint entering each segment from its end (see the top)
    const Plan fplan = make_plan(s, sizeof(T), false);
    const int64_t fblocks = s.batch * s.groups * fplan.tiles * segments.count;  // the same segments
    const size_t shared = static_cast<size_t>((2 * fplan.dc + s.dstate) * kPitch) * sizeof(T);
    dispatch_plan(fplan, [&]<int LN, int SPT>() {
      if constexpr (LN > 4) {
        throw InternalError(str("selective_scan: no adjoint kernel for ", LN, " lanes x ", SPT, " states"));
      } else {
        auto kernel = scan_adjoint_kernel<T, LN, SPT>;
        allow_shared(kernel, shared);
        kernel<<<static_cast<unsigned>(fblocks), fplan.threads(), shared, stream>>>(in, dy, fplan.dc, fplan.tiles, seg);
      }
    });
    scan_carry_kernel<T><<<grid_for(s.batch * s.dim * s.dstate, 256), 256, 0, stream>>>(s, in.A, dlast, seg,
                                                                                        /*reverse=*/true);
    CUDA_CHECK_LAUNCH();
  }
  const T* carry_start = segments.count > 1 ? seg.start : dlast;
  dispatch_plan(plan, [&]<int LN, int SPT>() {
    auto launch = [&](auto kernel) {
      allow_shared(kernel, plan.shared);
      kernel<<<static_cast<unsigned>(blocks * segments.count), plan.threads(), plan.shared, stream>>>(
          in, checkpoints, dy, carry_start, grads, workspace, w, plan.dc, plan.tiles, segments.count, segments.chunks);
    };
    if constexpr (LN < 8 && SPT > 1) {  // not a backward plan (make_plan: 8 lanes once N > 4)
      throw InternalError(str("selective_scan: no backward kernel for ", LN, " lanes x ", SPT, " states"));
    } else if (in.exact_zoh_b) {
      launch(scan_backward_kernel<T, LN, SPT, true>);
    } else {
      launch(scan_backward_kernel<T, LN, SPT, false>);
    }
  });
  CUDA_CHECK_LAUNCH();
  scan_finish_bc_kernel<T><<<grid_for(s.batch * s.groups * s.dstate * s.seqlen, 256, 1 << 16), 256, 0, stream>>>(
      grads, workspace, w, s, plan.tiles);
  scan_finish_batch_kernel<T><<<grid_for(s.dim * s.dstate + s.dim, 256, 1 << 16), 256, 0, stream>>>(
      grads, workspace, w, s, s.batch * segments.count);
  CUDA_CHECK_LAUNCH();
}

template void selective_scan_backward<float>(const ScanInputs<float>&, const float*, const float*, const float*,
                                             const ScanGrads<float>&, float*, int);
template void selective_scan_backward<double>(const ScanInputs<double>&, const double*, const double*,
                                              const double*, const ScanGrads<double>&, double*, int);

}  // namespace mg::cuda
