// The selective scan on the GPU: the design of its kernels (below), the forward and the recurrent
// step; the backward is in cuda/selective_scan_backward.cu, what both use in
// cuda/selective_scan_common.cuh (the math is in ops/selective_scan.h, the CPU twins in
// ops/cpu/selective_scan_*.cpp).
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
//   forward:  1. each segment but the last from a zero state, states only: its end state e_s and
//                its sum of delta' (P_s = exp(A sum delta'));
//             2. one thread per (b, d, n) carries the entering states over the segments in order,
//                H_0 = h0, H_{s+1} = P_s H_s + e_s;
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
#include "cuda/selective_scan_common.cuh"
#include "tensor/device_backend.h"

namespace mg::cuda {

namespace {

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
// STATES_ONLY: the split forward's first pass: the states alone, from zero; the segment's end
// state and sum of delta' go to seg.end and seg.dsum; the last segment has nothing to do. Otherwise the state entering the segment is h_start[item] (nullptr: zero), and the block
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
    h[k] = !STATES_ONLY && real && h_start ? h_start[(p.item * s.dim + d) * N + n] : T(0);
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

int64_t selective_scan_checkpoint_numel(const ScanSizes& s) {
  return checkpoint_states_numel(s) + s.batch * s.dim * s.seqlen;
}

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
          scan_carry_kernel<T><<<grid_for(s.batch * s.dim * s.dstate, 256), 256, 0, stream>>>(s, in.A, in.h0, seg.args,
                                                                                            /*reverse=*/false);
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
void selective_scan_step(const ScanInputs<T>& in, T* y, T* state, int device) {
  selective_scan_forward<T>(in, y, state, nullptr, device);  // L = 1: one chunk; h0 == state, read before written
}

#define MG_INSTANTIATE_SCAN(T)                                                    \
  template void selective_scan_forward<T>(const ScanInputs<T>&, T*, T*, T*, int); \
  template void selective_scan_step<T>(const ScanInputs<T>&, T*, T*, int);
MG_INSTANTIATE_SCAN(float)
MG_INSTANTIATE_SCAN(double)
#undef MG_INSTANTIATE_SCAN

}  // namespace mg::cuda
