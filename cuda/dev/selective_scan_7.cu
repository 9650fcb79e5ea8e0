// The selective scan on the GPU: forward, backward and the recurrent step (the math is in
// ops/selective_scan.h, the CPU twins in ops/cpu/selective_scan_*.cpp).
//
// Layout of the work. A block owns (batch b, group g, a tile of DC channels of that group); each
// channel's N states are spread over LN lanes of one warp, SPT states per lane (LN * SPT = N
// rounded up to a power of two). A thread walks the sequence in chunks of kChunk steps, keeping
// its states in registers:
//   - a chunk's inputs (u, delta, z, B, C) are first staged in shared memory by all threads,
//     with coalesced loads along t;
//   - <C_t, h_t> sums a thread's states, then its channel's LN lanes by warp shuffles in a fixed
//     butterfly; y is written back coalesced along t.
// The forward saves the state entering every chunk (a checkpoint: B D N L / kChunk values) and
// <C_t, h_t>. The backward walks the chunks in reverse, 8 lanes a channel; per chunk, two passes
// between barriers:
//   - the lanes' own work (backward_chunk): the chunk's states again from the checkpoint, into a
//     per-lane history in shared memory, then the adjoint recurrence backwards in time,
//       dh_t = dA_{t+1} dh_{t+1} + gy_t C_t      (gy: the gradient of y before the z gate),
//     with the sums over a channel's lanes (ddelta, du) and over a warp's channels (dB, dC) done
//     as reduce-scatters of shuffles;
//   - a pass over (channel, t) and (n, t) that finishes this chunk (du, ddelta, dB and dC summed
//     over the block's warps) and stages the previous one in time (its loads, softplus and the
//     gate, whose gradient needs only per-(channel, t) values).
// Gradients summed over channels (dB, dC) are summed over the tiles in a second pass; those summed
// over the batch (dA, dD_skip, ddelta_bias) are written per batch item and summed in a second
// pass. Every sum has a fixed order, so the gradients have the same bits on every run: there is no
// atomicAdd anywhere.
//
// Parallelism along L. Each recurrence runs along L, so batch x channels x states is all the
// parallelism above; a long sequence that comes alone (batch 1-4) leaves most of the card idle.
// Then the sequence is split into S segments of whole chunks (segment_plan), and the blocks are
// (batch, segment, group, tile): each direction runs in three launches, the chunked form of the
// associative scan (h -> dA h + b composes to h -> P h + e over a segment):
//   forward:  1. each segment but the last from a zero state (segment 0 from h0), states only:
//                its end state e_s and sum of delta' (P_s = exp(A sum delta'));
//             2. one thread per (b, d, n) carries the entering states over the segments in order,
//                H_{s+1} = P_s H_s + e_s;
//             3. the full forward of every segment from H_s (y, checkpoints, the last state).
//   backward: 1. each segment but the first from a zero adjoint at its end, the adjoint alone
//                (carry := dA_t (carry + gy_t C_t)) back to its start: g_s, and P_s;
//             2. the adjoint entering each segment from its end, in reverse order,
//                G_{s-1} = g_s + P_s G_s (G_{S-1} = dlast);
//             3. the full backward of every segment from G_s; sums over the batch become sums
//                over (batch, segment) items.
// About 1.5x the forward's work and 1.2x the backward's, for S times the blocks: used only below
// kFewBlocks blocks. The plan depends on the shapes alone, so the bits do too (not on the GPU).
//
// The variants tried are in cuda/dev/ (selective_scan_N.cu), their timings in benchmarks/RESULTS.md.
#include "cuda/device_math.cuh"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"
#include "cuda/scan_segments.h"
#include "tensor/device_backend.h"

namespace mg::cuda {

namespace {

constexpr int kChunk = 16;       // steps per chunk (and between checkpoints)
constexpr int kPitch = kChunk + 1;  // a row of a staged [channel][t] array, padded against bank conflicts
constexpr int kMaxThreads = 256;
constexpr size_t kSharedBudget = 96 << 10;  // per block: two blocks fit on an H100/H200 multiprocessor
constexpr int64_t kMaxDstate = 64;

// The forward's checkpoint buffer holds the state entering every chunk (B, D, chunks, N), then y
// before D_skip and the gate, <C_t, h_t> (B, D, L): the backward reads that instead of summing
// C h over the states again.
__host__ __device__ inline int64_t checkpoint_states_numel(const ScanSizes& s) {
  return s.batch * s.dim * ((s.seqlen + kChunk - 1) / kChunk) * s.dstate;
}

int64_t pow2_at_least(int64_t n) {
  int64_t p = 1;
  while (p < n) p *= 2;
  return p;
}

// The shape of one launch: lanes per channel, states per lane, channels per block.
struct Plan {
  int ln = 1, spt = 1, dc = 1;
  int64_t tiles = 1;  // channel tiles per group
  size_t shared = 0;  // bytes of dynamic shared memory
  // Whole warps: the lanes of a channel sum with warp shuffles, which need every lane of the warp
  // present; threads past dc * ln are idle lanes (their channel index is past the block's).
  int threads() const { return (dc * ln + 31) / 32 * 32; }
};

// Values of shared memory per block (the layouts are in the kernels below).
int64_t forward_shared_values(int64_t dc, int64_t N) { return 4 * dc * kPitch + 2 * N * kPitch; }

// The backward's shared memory, in values of T (the kernel carves it in this order):
//   per channel, kArrays rows of kPitch (channel dc is all zeros: idle lanes read it);
//   B, C: [NP][kPitch] each (rows N .. NP - 1 zero);
//   the states h_0 .. h_14 of the chunk: [warp][kChunk - 1][SPT][32], a lane's own, without bank
//     conflicts and at offsets known at compile time;
//   dB_t, dC_t summed over a warp's channels: [warp][kChunk][2][NP].
constexpr int kArrays = 9;  // u, delta', delta' u, softplus'(raw delta), gy, x, y, dD, ddelta_bias
enum BackwardArray { kU, kDt, kDtu, kDsp, kGy, kX, kY, kDD, kDbias };
__host__ __device__ inline int64_t backward_shared_values(int64_t dc, int64_t np, int64_t spt, int64_t warps) {
  return kArrays * (dc + 1) * kPitch + 2 * np * kPitch + warps * (kChunk - 1) * spt * 32 + warps * kChunk * 2 * np;
}

Plan make_plan(const ScanSizes& s, size_t element, bool backward) {
  Plan p;
  const int64_t np = pow2_at_least(s.dstate);
  // The forward spreads a channel's states over 4 lanes (fewer shuffles per state), the backward
  // over 8 (fewer registers per thread, for its larger per-state work).
  p.ln = static_cast<int>(std::min<int64_t>(np, backward ? 8 : 4));
  p.spt = static_cast<int>(np / p.ln);
  int64_t dc = kMaxThreads / p.ln;
  auto bytes = [&](int64_t c) {
    const int64_t warps = (c * p.ln + 31) / 32;
    return static_cast<size_t>(backward ? backward_shared_values(c, np, p.spt, warps)
                                        : forward_shared_values(c, s.dstate)) *
           element;
  };
  while (dc > 1 && bytes(dc) > kSharedBudget) --dc;
  const int64_t cpg = s.channels_per_group();
  dc = std::min<int64_t>(dc, std::max<int64_t>(cpg, 1));
  p.dc = static_cast<int>(dc);
  p.tiles = (cpg + dc - 1) / dc;
  p.shared = bytes(dc);
  return p;
}

// The split along L (see the top). A launch of fewer than kFewBlocks blocks (under two a
// multiprocessor of an H100/H200) is split into segments until it has about kSegmentTarget
// blocks, each segment at least kMinSegmentChunks chunks (512 steps: the extra passes cost about
// a third of the scan, worth paying only where a sequence is long enough to leave the card idle).
// The constants are measured (benchmarks/RESULTS.md, "the selective scan split along L"): at
// B = 16 (384 forward blocks) a split only costs; at B = 1-4 more segments gain up to ~1,000 blocks.
// ScopedScanSegments (cuda/scan_segments.h) fixes the count for tests and benchmarks.
constexpr int64_t kFewBlocks = 256;
constexpr int64_t kSegmentTarget = 1024;
constexpr int64_t kMinSegmentChunks = 32;

struct Segments {
  int64_t count = 1;   // S
  int64_t chunks = 0;  // chunks per segment (the last one may have fewer)
};

Segments segment_plan(const ScanSizes& s, int64_t blocks) {
  const int64_t chunks = (s.seqlen + kChunk - 1) / kChunk;
  int64_t wanted = ScopedScanSegments::count();
  if (wanted <= 0) wanted = blocks >= kFewBlocks ? 1 : (kSegmentTarget + blocks - 1) / blocks;
  int64_t per = std::max<int64_t>((chunks + wanted - 1) / wanted, 1);
  if (ScopedScanSegments::count() <= 0) per = std::max(per, kMinSegmentChunks);
  return {(chunks + per - 1) / per, per};
}

// What the kernels of a split scan read and write besides the scan's own arguments, per
// (batch, segment) item: the forward's first pass writes `end` (B S, D, N) and `dsum` (B S, D),
// its carry writes `start` (B S, D, N), the state entering each segment; the backward's passes
// do the same with the adjoint (end: the adjoint at a segment's start from a zero one at its end;
// start: the adjoint entering a segment from its end). All nullptr when S = 1.
template <class T>
struct SegmentArgs {
  int64_t count = 1, chunks = 0;
  T* end = nullptr;
  T* dsum = nullptr;
  T* start = nullptr;
};

// exp(dt a) as exp2(dt a2) with a2 = a log2(e) prepared once per state: the hardware's ex2,
// where expf first reduces its argument (several instructions more per step), and exp2f adds
// three instructions (a compare and two predicated multiplies) to produce results below 2^-126.
// Here such a result may be flushed to zero: a flushed dA < 2^-126 changes h and the gradients by
// less than 2^-126 of their size.
__device__ inline float exp2_ftz(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
__device__ inline double exp2_ftz(double x) { return exp2(x); }
template <class T>
constexpr T kLog2e = T(1.4426950408889634074);

template <int LN, class T>
__device__ T lane_sum(T v) {  // over the LN lanes of one channel (aligned groups of a warp)
#pragma unroll
  for (int offset = LN / 2; offset >= 1; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// softplus(x) and its derivative sigmoid(x), with PyTorch's linear regime above 20.
template <class T>
__device__ T softplus_grad(T x) {
  return x > T(20) ? T(1) : dsigmoid(x);
}

// Where a block is: its batch item, segment, group, first channel and number of channels; `item`
// is (batch, segment) as one index, and [c_begin, c_end) the segment's chunks.
struct BlockPlace {
  int64_t b, seg, item, g, tile, d0, c_begin, c_end;
  int nch;
};

__device__ inline BlockPlace place_block(const ScanSizes& s, int dc, int64_t tiles, int64_t seg_count,
                                         int64_t seg_chunks) {
  BlockPlace p;
  const int64_t block = blockIdx.x;
  p.tile = block % tiles;
  p.g = (block / tiles) % s.groups;
  p.item = block / (tiles * s.groups);
  p.b = p.item / seg_count;
  p.seg = p.item % seg_count;
  const int64_t cpg = s.dim / s.groups;
  p.d0 = p.g * cpg + p.tile * dc;
  p.nch = static_cast<int>(min(static_cast<int64_t>(dc), cpg - p.tile * dc));
  const int64_t chunks = (s.seqlen + kChunk - 1) / kChunk;
  p.c_begin = seg_count == 1 ? 0 : p.seg * seg_chunks;
  p.c_end = seg_count == 1 ? chunks : min(chunks, p.c_begin + seg_chunks);
  return p;
}

// Stages a chunk's per-channel inputs for the forward: u, delta' and z; and B, C of the block's
// group (STATES_ONLY: u, delta' and B, what the states need). Arrays [channel][kPitch] / [n][kPitch].
template <bool STATES_ONLY, class T>
__device__ void stage_chunk(const ScanInputs<T>& in, const BlockPlace& p, int64_t t0, int len, T* u_s, T* dt_s,
                            T* z_s, T* B_s, T* C_s) {
  const ScanSizes& s = in.size;
  for (int i = threadIdx.x; i < p.nch * kChunk; i += blockDim.x) {
    const int c = i / kChunk, t = i % kChunk;
    if (t >= len) continue;
    const int64_t d = p.d0 + c, idx = (p.b * s.dim + d) * s.seqlen + t0 + t;
    const T raw = in.delta[idx] + (in.delta_bias ? in.delta_bias[d] : T(0));
    u_s[c * kPitch + t] = in.u[idx];
    dt_s[c * kPitch + t] = in.delta_softplus ? dsoftplus(raw) : raw;
    if (!STATES_ONLY) z_s[c * kPitch + t] = in.z ? in.z[idx] : T(0);
  }
  for (int i = threadIdx.x; i < s.dstate * kChunk; i += blockDim.x) {
    const int64_t n = i / kChunk;
    const int t = i % kChunk;
    if (t >= len) continue;
    const int64_t idx = ((p.b * s.groups + p.g) * s.dstate + n) * s.seqlen + t0 + t;
    B_s[n * kPitch + t] = in.Bm[idx];
    if (!STATES_ONLY) C_s[n * kPitch + t] = in.Cm[idx];
  }
}

// EXACT: the exact zero-order hold of B (hold = delta' exprel(delta' a)), else hold = delta'.
// One block walks its segment's chunks [c_begin, c_end) (all of L unless the scan is split).
// STATES_ONLY: the split forward's first pass: the states alone, from h0 (segment 0) or zero; the
// segment's end state and sum of delta' go to seg.end and seg.dsum; the last segment has nothing to
// do. Otherwise the state entering the segment is h_start[item] (nullptr: zero), and the block
// writes y, its chunks' checkpoints and <C, h> (when asked) and, in the last segment, last_state.
template <class T, int LN, int SPT, bool EXACT, bool STATES_ONLY>
__global__ void scan_forward_kernel(ScanInputs<T> in, T* y, T* last_state, T* checkpoints, T* y_pre, int dc,
                                    int64_t tiles, const T* h_start, SegmentArgs<T> seg) {
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  T* u_s = reinterpret_cast<T*>(shared_bytes);  // [dc][kPitch]
  T* dt_s = u_s + dc * kPitch;
  T* z_s = dt_s + dc * kPitch;
  T* ypre_s = z_s + dc * kPitch;
  T* B_s = ypre_s + dc * kPitch;  // [N][kPitch]
  T* C_s = B_s + in.size.dstate * kPitch;

  const ScanSizes& s = in.size;
  const BlockPlace p = place_block(s, dc, tiles, seg.count, seg.chunks);
  if (STATES_ONLY && p.seg == seg.count - 1) return;  // the whole block: before any barrier
  const int c = threadIdx.x / LN, lane = threadIdx.x % LN;
  const bool active = c < p.nch;
  const int64_t d = p.d0 + c, L = s.seqlen;
  const int N = static_cast<int>(s.dstate);
  const int64_t chunks = (L + kChunk - 1) / kChunk;

  T a[SPT], a2[SPT], h[SPT];
#pragma unroll
  for (int k = 0; k < SPT; ++k) {
    const int n = lane + k * LN;
    const bool real = active && n < N;
    a[k] = real ? in.A[d * N + n] : T(0);
    a2[k] = a[k] * kLog2e<T>;
    if (STATES_ONLY) {
      h[k] = real && p.seg == 0 && in.h0 ? in.h0[(p.b * s.dim + d) * N + n] : T(0);
    } else {
      h[k] = real && h_start ? h_start[(p.item * s.dim + d) * N + n] : T(0);
    }
  }
  T dsum = T(0);  // STATES_ONLY: the segment's sum of delta'
  for (int64_t chunk = p.c_begin; chunk < p.c_end; ++chunk) {
    const int64_t t0 = chunk * kChunk;
    const int len = static_cast<int>(min(static_cast<int64_t>(kChunk), L - t0));
    if (!STATES_ONLY && checkpoints && active) {
#pragma unroll
      for (int k = 0; k < SPT; ++k) {
        const int n = lane + k * LN;
        if (n < N) checkpoints[((p.b * s.dim + d) * chunks + chunk) * N + n] = h[k];
      }
    }
    stage_chunk<STATES_ONLY>(in, p, t0, len, u_s, dt_s, z_s, B_s, C_s);
    __syncthreads();
#pragma unroll  // unrolled, so that one step's shuffles overlap the next steps' arithmetic
    for (int t = 0; t < kChunk; ++t) {
      if (t >= len) break;
      T acc = T(0);
      if (active) {
        const T u = u_s[c * kPitch + t], dt = dt_s[c * kPitch + t], dtu = dt * u;
        if (STATES_ONLY) dsum += dt;
#pragma unroll
        for (int k = 0; k < SPT; ++k) {
          const int n = lane + k * LN;
          if (n >= N) continue;
          const T dA = exp2_ftz(dt * a2[k]);
          const T Bn = B_s[n * kPitch + t];
          // The same expressions as the backward's recomputation of the states (backward_chunk).
          h[k] = EXACT ? dA * h[k] + dt * dexprel(dt * a[k], dA) * Bn * u : dA * h[k] + dtu * Bn;
          if (!STATES_ONLY) acc += C_s[n * kPitch + t] * h[k];
        }
      }
      if (STATES_ONLY) continue;
      acc = lane_sum<LN>(acc);  // every lane of the warp takes part
      if (active && lane == 0) ypre_s[c * kPitch + t] = acc;
    }
    __syncthreads();
    if (!STATES_ONLY) {
      for (int i = threadIdx.x; i < p.nch * kChunk; i += blockDim.x) {
        const int cc = i / kChunk, t = i % kChunk;
        if (t >= len) continue;
        const int64_t dd = p.d0 + cc, idx = (p.b * s.dim + dd) * L + t0 + t;
        const T ch = ypre_s[cc * kPitch + t];  // <C_t, h_t>
        if (y_pre) y_pre[idx] = ch;
        T out = ch + (in.D_skip ? in.D_skip[dd] * u_s[cc * kPitch + t] : T(0));
        if (in.z) out *= dsilu(z_s[cc * kPitch + t]);
        y[idx] = out;
      }
      __syncthreads();  // the next chunk restages the arrays
    }
  }
  if (!active) return;
  if (STATES_ONLY) {
#pragma unroll
    for (int k = 0; k < SPT; ++k) {
      const int n = lane + k * LN;
      if (n < N) seg.end[(p.item * s.dim + d) * N + n] = h[k];
    }
    if (lane == 0) seg.dsum[p.item * s.dim + d] = dsum;
  } else if (p.seg == seg.count - 1) {
#pragma unroll
    for (int k = 0; k < SPT; ++k) {
      const int n = lane + k * LN;
      if (n < N) last_state[(p.b * s.dim + d) * N + n] = h[k];
    }
  }
}

// The forward's carry over segments (see the top), one thread per (b, d, n): start[b, 0] = h0,
// start[b, s + 1] = exp(a sum delta'_s) start[b, s] + end[b, s] (end[b, 0] already began at h0).
template <class T>
__global__ void scan_carry_forward_kernel(ScanSizes s, const T* A, const T* h0, SegmentArgs<T> seg) {
  const int64_t DN = s.dim * s.dstate, S = seg.count;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < s.batch * DN; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t b = i / DN, dn = i % DN, d = dn / s.dstate;
    const T a2 = A[dn] * kLog2e<T>;
    seg.start[b * S * DN + dn] = h0 ? h0[i] : T(0);
    T H = seg.end[b * S * DN + dn];
    for (int64_t sg = 1; sg < S; ++sg) {
      const int64_t item = b * S + sg;
      seg.start[item * DN + dn] = H;
      if (sg + 1 < S) H = exp2_ftz(seg.dsum[item * s.dim + d] * a2) * H + seg.end[item * DN + dn];
    }
  }
}

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

// The backward's carry over segments (see the top), one thread per (b, d, n), last segment first:
// start[b, S - 1] = dlast, start[b, s - 1] = end[b, s] + exp(a sum delta'_s) start[b, s].
template <class T>
__global__ void scan_carry_backward_kernel(ScanSizes s, const T* A, const T* dlast, SegmentArgs<T> seg) {
  const int64_t DN = s.dim * s.dstate, S = seg.count;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < s.batch * DN; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t b = i / DN, dn = i % DN, d = dn / s.dstate;
    const T a2 = A[dn] * kLog2e<T>;
    T G = dlast ? dlast[i] : T(0);
    for (int64_t sg = S - 1; sg >= 1; --sg) {
      const int64_t item = b * S + sg;
      seg.start[item * DN + dn] = G;
      G = seg.end[item * DN + dn] + exp2_ftz(seg.dsum[item * s.dim + d] * a2) * G;
    }
    seg.start[b * S * DN + dn] = G;
  }
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

// Calls fn.template operator()<LN, SPT>() for the plan's lanes and states per lane.
template <class Fn>
void dispatch_plan(const Plan& p, Fn&& fn) {
  switch (p.ln * 100 + p.spt) {
    case 101: return fn.template operator()<1, 1>();
    case 201: return fn.template operator()<2, 1>();
    case 401: return fn.template operator()<4, 1>();
    case 402: return fn.template operator()<4, 2>();
    case 404: return fn.template operator()<4, 4>();
    case 408: return fn.template operator()<4, 8>();
    case 416: return fn.template operator()<4, 16>();
    case 801: return fn.template operator()<8, 1>();
    case 802: return fn.template operator()<8, 2>();
    case 804: return fn.template operator()<8, 4>();
    case 808: return fn.template operator()<8, 8>();
  }
  throw InternalError(str("selective_scan: no kernel for ", p.ln, " lanes x ", p.spt, " states"));
}

template <class Kernel>
void allow_shared(Kernel kernel, size_t bytes) {
  if (bytes > (48 << 10)) CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                          static_cast<int>(bytes)));
}

void check_dstate(const ScanSizes& s) {
  MG_CHECK(s.dstate >= 1 && s.dstate <= kMaxDstate, "selective_scan: on cuda, the state size N must be in [1, ",
           kMaxDstate, "], got N = ", s.dstate, " (B, D, L = ", s.batch, ", ", s.dim, ", ", s.seqlen, ")");
}

}  // namespace

int64_t selective_scan_checkpoint_numel(const ScanSizes& s) {
  return checkpoint_states_numel(s) + s.batch * s.dim * s.seqlen;
}

int64_t selective_scan_workspace_numel(const ScanSizes& s, DType dtype) {
  check_dstate(s);
  const Plan plan = make_plan(s, dtype_size(dtype), true);
  return workspace_layout(s, plan.tiles, segment_plan(s, s.batch * s.groups * plan.tiles).count).total;
}

namespace {

// Device memory for the split forward's SegmentArgs, from the caching allocator; freed on the
// host once the kernels are queued (the stream orders every later use after them).
template <class T>
struct SegmentBuffers {
  SegmentArgs<T> args;
  int device;
  void* memory = nullptr;
  SegmentBuffers(const ScanSizes& s, Segments seg, int dev) : device(dev) {
    args.count = seg.count;
    args.chunks = seg.chunks;
    if (seg.count == 1) return;
    const int64_t items = s.batch * seg.count, states = items * s.dim * s.dstate;
    memory = device_malloc(static_cast<size_t>(2 * states + items * s.dim) * sizeof(T), device);
    args.end = static_cast<T*>(memory);
    args.start = args.end + states;
    args.dsum = args.start + states;
  }
  ~SegmentBuffers() { device_free(memory, device); }
  SegmentBuffers(const SegmentBuffers&) = delete;
  SegmentBuffers& operator=(const SegmentBuffers&) = delete;
};

}  // namespace

template <class T>
void selective_scan_forward(const ScanInputs<T>& in, T* y, T* last_state, T* checkpoints, int device) {
  const ScanSizes& s = in.size;
  check_dstate(s);
  if (s.batch * s.dim == 0) return;
  DeviceGuard guard(device);
  const Plan plan = make_plan(s, sizeof(T), false);
  const int64_t blocks = s.batch * s.groups * plan.tiles;
  SegmentBuffers<T> seg(s, segment_plan(s, blocks), device);
  cudaStream_t stream = current_stream();
  const unsigned grid = static_cast<unsigned>(blocks * seg.args.count);
  dispatch_plan(plan, [&]<int LN, int SPT>() {
    if constexpr (LN > 4) {  // not a forward plan (make_plan: at most 4 lanes a channel)
      throw InternalError(str("selective_scan: no forward kernel for ", LN, " lanes x ", SPT, " states"));
    } else {
      T* y_pre = checkpoints ? checkpoints + checkpoint_states_numel(s) : nullptr;
      auto launch = [&](auto kernel, const T* h_start) {
        allow_shared(kernel, plan.shared);
        kernel<<<grid, plan.threads(), plan.shared, stream>>>(in, y, last_state, checkpoints, y_pre, plan.dc,
                                                              plan.tiles, h_start, seg.args);
      };
      auto run = [&]<bool EXACT>() {
        if (seg.args.count > 1) {
          launch(scan_forward_kernel<T, LN, SPT, EXACT, true>, nullptr);
          scan_carry_forward_kernel<T><<<grid_for(s.batch * s.dim * s.dstate, 256), 256, 0, stream>>>(s, in.A, in.h0,
                                                                                                    seg.args);
        }
        launch(scan_forward_kernel<T, LN, SPT, EXACT, false>, seg.args.count > 1 ? seg.args.start : in.h0);
      };
      if (in.exact_zoh_b) {
        run.template operator()<true>();
      } else {
        run.template operator()<false>();
      }
    }
  });
  CUDA_CHECK_LAUNCH();
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
    scan_carry_backward_kernel<T><<<grid_for(s.batch * s.dim * s.dstate, 256), 256, 0, stream>>>(s, in.A, dlast, seg);
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

template <class T>
void selective_scan_step(const ScanInputs<T>& in, T* y, T* state, int device) {
  selective_scan_forward<T>(in, y, state, nullptr, device);  // L = 1: one chunk; h0 == state, read before written
}

#define MG_INSTANTIATE_SCAN(T)                                                                                    \
  template void selective_scan_forward<T>(const ScanInputs<T>&, T*, T*, T*, int);                                 \
  template void selective_scan_backward<T>(const ScanInputs<T>&, const T*, const T*, const T*, const ScanGrads<T>&, \
                                           T*, int);                                                              \
  template void selective_scan_step<T>(const ScanInputs<T>&, T*, T*, int);
MG_INSTANTIATE_SCAN(float)
MG_INSTANTIATE_SCAN(double)
#undef MG_INSTANTIATE_SCAN

}  // namespace mg::cuda
