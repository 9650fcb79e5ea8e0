// The selective scan on the GPU: forward, backward and the recurrent step (the math is in
// ops/selective_scan.h, the CPU twins in ops/cpu/selective_scan_*.cpp). This is the simple,
// correct baseline; cuda/dev/ holds the work towards a faster fused kernel.
//
// Layout of the work. A block owns (batch b, group g, a tile of DC channels of that group); each
// channel's N states are spread over LN lanes of one warp, SPT states per lane (LN * SPT = N
// rounded up to a power of two). A thread walks the sequence in chunks of kChunk steps, keeping
// its states in registers:
//   - a chunk's inputs (u, delta, z, B, C) are first staged in shared memory by all threads,
//     with coalesced loads along t;
//   - <C_t, h_t> sums a thread's states, then its channel's LN lanes by warp shuffles in a fixed
//     butterfly; y is written back coalesced along t.
// The forward saves the state entering every chunk (a checkpoint: B D N L / kChunk values). The
// backward walks the chunks in reverse: it recomputes the chunk's states from its checkpoint into
// shared memory, then runs the adjoint recurrence backwards in time:
//   dh_t = dA_{t+1} dh_{t+1} + gy_t C_t      (gy: the gradient of y before the z gate)
// Gradients summed over channels (dB, dC) are summed first over a warp's channels by shuffles,
// then over the block's warps in shared memory, then over the tiles in a second pass; those summed over the batch (dA, dD_skip,
// ddelta_bias) are written per batch item and summed in a second pass. Every sum has a fixed
// order, so the gradients have the same bits on every run: there is no atomicAdd anywhere.
// The variants tried are in cuda/dev/ (selective_scan_N.cu), their timings in benchmarks/RESULTS.md.
#include "cuda/device_math.cuh"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"

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

// Values of shared memory per channel and per block (the layout is in the kernels below).
int64_t forward_shared_values(int64_t dc, int64_t N) { return 4 * dc * kPitch + 2 * N * kPitch; }
int64_t backward_shared_values(int64_t dc, int64_t N, int64_t np, int64_t warps) {
  return 9 * dc * kPitch + 2 * N * kPitch + kChunk * dc * (np + 1) + 2 * kChunk * warps * N;
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
    return static_cast<size_t>(backward ? backward_shared_values(c, s.dstate, np, warps)
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

// exp(dt a) as exp2(dt a2) with a2 = a log2(e) prepared once per state: exp2f is the hardware's
// ex2 plus a fix-up, where expf first reduces its argument (several instructions more per step).
__device__ inline float dexp2(float x) { return exp2f(x); }
__device__ inline double dexp2(double x) { return exp2(x); }
template <class T>
constexpr T kLog2e = T(1.4426950408889634074);

// Sum over the channels of one warp (the lanes with the same lane-in-channel), in a fixed
// butterfly: 32 / LN channels share a warp.
template <int LN, class T>
__device__ T channel_sum(T v) {
#pragma unroll
  for (int offset = LN; offset < 32; offset *= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

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

// Where a block is: its batch item, group, first channel and number of channels.
struct BlockPlace {
  int64_t b, g, tile, d0;
  int nch;
};

__device__ inline BlockPlace place_block(const ScanSizes& s, int dc, int64_t tiles) {
  BlockPlace p;
  const int64_t block = blockIdx.x;
  p.tile = block % tiles;
  p.g = (block / tiles) % s.groups;
  p.b = block / (tiles * s.groups);
  const int64_t cpg = s.dim / s.groups;
  p.d0 = p.g * cpg + p.tile * dc;
  p.nch = static_cast<int>(min(static_cast<int64_t>(dc), cpg - p.tile * dc));
  return p;
}

// Stages a chunk's per-channel inputs: u, delta' (and softplus' of the raw delta, if asked), z
// and, if given, dy; and B, C of the block's group. Arrays [channel][kPitch] / [n][kPitch].
template <class T>
__device__ void stage_chunk(const ScanInputs<T>& in, const BlockPlace& p, int64_t t0, int len, T* u_s, T* dt_s,
                            T* dsp_s, T* z_s, const T* dy, T* dy_s, T* B_s, T* C_s) {
  const ScanSizes& s = in.size;
  for (int i = threadIdx.x; i < p.nch * kChunk; i += blockDim.x) {
    const int c = i / kChunk, t = i % kChunk;
    if (t >= len) continue;
    const int64_t d = p.d0 + c, idx = (p.b * s.dim + d) * s.seqlen + t0 + t;
    const T raw = in.delta[idx] + (in.delta_bias ? in.delta_bias[d] : T(0));
    u_s[c * kPitch + t] = in.u[idx];
    dt_s[c * kPitch + t] = in.delta_softplus ? dsoftplus(raw) : raw;
    if (dsp_s) dsp_s[c * kPitch + t] = in.delta_softplus ? softplus_grad(raw) : T(1);
    z_s[c * kPitch + t] = in.z ? in.z[idx] : T(0);
    if (dy_s) dy_s[c * kPitch + t] = dy ? dy[idx] : T(0);
  }
  for (int i = threadIdx.x; i < s.dstate * kChunk; i += blockDim.x) {
    const int64_t n = i / kChunk;
    const int t = i % kChunk;
    if (t >= len) continue;
    const int64_t idx = ((p.b * s.groups + p.g) * s.dstate + n) * s.seqlen + t0 + t;
    B_s[n * kPitch + t] = in.Bm[idx];
    C_s[n * kPitch + t] = in.Cm[idx];
  }
}

// dBu's hold factor: delta' (Mamba's) or delta' exprel(delta' a) (exact zero-order hold).
template <class T>
__device__ T hold_of(bool exact, T dt, T a, T dA) {
  return exact ? dt * dexprel(dt * a, dA) : dt;
}

template <class T, int LN, int SPT>
__global__ void scan_forward_kernel(ScanInputs<T> in, T* y, T* last_state, T* checkpoints, T* y_pre, int dc,
                                    int64_t tiles) {
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  T* u_s = reinterpret_cast<T*>(shared_bytes);  // [dc][kPitch]
  T* dt_s = u_s + dc * kPitch;
  T* z_s = dt_s + dc * kPitch;
  T* ypre_s = z_s + dc * kPitch;
  T* B_s = ypre_s + dc * kPitch;  // [N][kPitch]
  T* C_s = B_s + in.size.dstate * kPitch;

  const ScanSizes& s = in.size;
  const BlockPlace p = place_block(s, dc, tiles);
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
    h[k] = real && in.h0 ? in.h0[(p.b * s.dim + d) * N + n] : T(0);
  }
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const int64_t t0 = chunk * kChunk;
    const int len = static_cast<int>(min(static_cast<int64_t>(kChunk), L - t0));
    if (checkpoints && active) {
#pragma unroll
      for (int k = 0; k < SPT; ++k) {
        const int n = lane + k * LN;
        if (n < N) checkpoints[((p.b * s.dim + d) * chunks + chunk) * N + n] = h[k];
      }
    }
    stage_chunk(in, p, t0, len, u_s, dt_s, static_cast<T*>(nullptr), z_s, static_cast<const T*>(nullptr),
                static_cast<T*>(nullptr), B_s, C_s);
    __syncthreads();
#pragma unroll  // unrolled, so that one step's shuffles overlap the next steps' arithmetic
    for (int t = 0; t < kChunk; ++t) {
      if (t >= len) break;
      T acc = T(0);
      if (active) {
        const T u = u_s[c * kPitch + t], dt = dt_s[c * kPitch + t];
#pragma unroll
        for (int k = 0; k < SPT; ++k) {
          const int n = lane + k * LN;
          if (n >= N) continue;
          const T dA = dexp2(dt * a2[k]);
          h[k] = dA * h[k] + hold_of(in.exact_zoh_b, dt, a[k], dA) * B_s[n * kPitch + t] * u;
          acc += C_s[n * kPitch + t] * h[k];
        }
      }
      acc = lane_sum<LN>(acc);  // every lane of the warp takes part
      if (active && lane == 0) ypre_s[c * kPitch + t] = acc;
    }
    __syncthreads();
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
  if (active) {
#pragma unroll
    for (int k = 0; k < SPT; ++k) {
      const int n = lane + k * LN;
      if (n < N) last_state[(p.b * s.dim + d) * N + n] = h[k];
    }
  }
}

// The workspace of the backward: per-tile sums of dB and dC over the tile's channels
// (B, G, tiles, 2, N, L), then per-batch-item dA (B, D, N), dD_skip (B, D), ddelta_bias (B, D).
struct Workspace {
  int64_t bc, dA, dD, dbias, total;
};
Workspace workspace_layout(const ScanSizes& s, int64_t tiles) {
  Workspace w;
  w.bc = 0;
  w.dA = s.batch * s.groups * tiles * 2 * s.dstate * s.seqlen;
  w.dD = w.dA + s.batch * s.dim * s.dstate;
  w.dbias = w.dD + s.batch * s.dim;
  w.total = w.dbias + s.batch * s.dim;
  return w;
}

template <class T, int LN, int SPT>
__global__ void scan_backward_kernel(ScanInputs<T> in, const T* checkpoints, const T* dy, const T* dlast,
                                     ScanGrads<T> grads, T* work, Workspace w, int dc, int64_t tiles) {
  const ScanSizes& s = in.size;
  const int N = static_cast<int>(s.dstate);
  const int64_t L = s.seqlen;
  constexpr int NP = LN * SPT;
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  T* u_s = reinterpret_cast<T*>(shared_bytes);  // nine [dc][kPitch] arrays
  T* dt_s = u_s + dc * kPitch;
  T* dsp_s = dt_s + dc * kPitch;
  T* z_s = dsp_s + dc * kPitch;
  T* gy_s = z_s + dc * kPitch;  // dy when staged, then the gradient of y before the gate
  T* ddt_s = gy_s + dc * kPitch;
  T* du_s = ddt_s + dc * kPitch;
  T* dD_s = du_s + dc * kPitch;     // running sums over chunks, per (channel, t mod kChunk)
  T* dbias_s = dD_s + dc * kPitch;  // likewise
  T* B_s = dbias_s + dc * kPitch;   // [N][kPitch]
  T* C_s = B_s + N * kPitch;
  T* hist = C_s + N * kPitch;  // [kChunk][dc][NP + 1]: the states h_t of the chunk
  const int warps = blockDim.x / 32, warp = threadIdx.x / 32;
  T* redB = hist + kChunk * dc * (NP + 1);  // [kChunk][warps][N]: dB_t summed over a warp's channels
  T* redC = redB + kChunk * warps * N;
  auto at = [&](int t, int c, int n) { return (t * dc + c) * (NP + 1) + n; };
  const bool writes_warp_sum = (threadIdx.x % 32) < LN;  // the lanes of the warp's first channel

  const BlockPlace p = place_block(s, dc, tiles);
  const int c = threadIdx.x / LN, lane = threadIdx.x % LN;
  const bool active = c < p.nch;
  const int64_t d = p.d0 + c;
  const int64_t chunks = (L + kChunk - 1) / kChunk;
  const bool exact = in.exact_zoh_b;
  const T* y_saved = checkpoints + checkpoint_states_numel(s);  // <C_t, h_t> from the forward

  for (int i = threadIdx.x; i < dc * kPitch; i += blockDim.x) dD_s[i] = dbias_s[i] = T(0);
  T a[SPT], a2[SPT], carry[SPT], dA_acc[SPT], h_in[SPT];
#pragma unroll
  for (int k = 0; k < SPT; ++k) {
    const int n = lane + k * LN;
    const bool real = active && n < N;
    a[k] = real ? in.A[d * N + n] : T(0);
    a2[k] = a[k] * kLog2e<T>;
    carry[k] = real && dlast ? dlast[(p.b * s.dim + d) * N + n] : T(0);
    dA_acc[k] = T(0);
  }
  for (int64_t chunk = chunks - 1; chunk >= 0; --chunk) {
    const int64_t t0 = chunk * kChunk;
    const int len = static_cast<int>(min(static_cast<int64_t>(kChunk), L - t0));
#pragma unroll
    for (int k = 0; k < SPT; ++k) {
      const int n = lane + k * LN;
      h_in[k] = active && n < N ? checkpoints[((p.b * s.dim + d) * chunks + chunk) * N + n] : T(0);
    }
    stage_chunk(in, p, t0, len, u_s, dt_s, dsp_s, z_s, dy, gy_s, B_s, C_s);
    __syncthreads();
    // 1. The chunk's states again, from its checkpoint.
    {
      T h[SPT];
#pragma unroll
      for (int k = 0; k < SPT; ++k) h[k] = h_in[k];
      if (active) {
        for (int t = 0; t < len; ++t) {
          const T u = u_s[c * kPitch + t], dt = dt_s[c * kPitch + t];
#pragma unroll
          for (int k = 0; k < SPT; ++k) {
            const int n = lane + k * LN;
            if (n >= N) continue;
            const T dA = dexp2(dt * a2[k]);
            h[k] = dA * h[k] + hold_of(exact, dt, a[k], dA) * B_s[n * kPitch + t] * u;
            hist[at(t, c, n)] = h[k];
          }
        }
      }
    }
    // 2. Per (channel, t): through the gate. y = (ypre + D u) silu(z):
    //    gy = dy silu(z),  dz = dy (ypre + D u) silu'(z),  silu' = s (1 + z (1 - s))
    for (int i = threadIdx.x; i < p.nch * kChunk; i += blockDim.x) {
      const int cc = i / kChunk, t = i % kChunk;
      if (t >= len) continue;
      const int64_t dd = p.d0 + cc, idx = (p.b * s.dim + dd) * L + t0 + t;
      const T g = gy_s[cc * kPitch + t];
      T gy = g;
      if (in.z) {
        const T z = z_s[cc * kPitch + t], sz = dsigmoid(z);
        const T y_pre = y_saved[idx] + (in.D_skip ? in.D_skip[dd] * u_s[cc * kPitch + t] : T(0));
        if (grads.dz) grads.dz[idx] = g * y_pre * sz * (T(1) + z * (T(1) - sz));
        gy = g * z * sz;
      }
      gy_s[cc * kPitch + t] = gy;
      dD_s[cc * kPitch + t] += gy * u_s[cc * kPitch + t];
    }
    __syncthreads();
    // 3. The adjoint recurrence, backwards through the chunk.
    for (int t = len - 1; t >= 0; --t) {
      T ddt = T(0), du = T(0), sum_b[SPT], sum_c[SPT];
#pragma unroll
      for (int k = 0; k < SPT; ++k) sum_b[k] = sum_c[k] = T(0);
      if (active) {
        const T gy = gy_s[c * kPitch + t], u = u_s[c * kPitch + t], dt = dt_s[c * kPitch + t];
#pragma unroll
        for (int k = 0; k < SPT; ++k) {
          const int n = lane + k * LN;
          if (n >= N) continue;
          const T h_prev = t > 0 ? hist[at(t - 1, c, n)] : h_in[k];
          const T Bn = B_s[n * kPitch + t], Cn = C_s[n * kPitch + t];
          const T dh = carry[k] + gy * Cn;  // dL/dh_t
          const T dA = dexp2(dt * a2[k]);
          const T hold = hold_of(exact, dt, a[k], dA);
          sum_c[k] = gy * hist[at(t, c, n)];  // dC_t += gy h_t
          sum_b[k] = dh * hold * u;           // dB_t += dh hold u
          // h_t = dA h_{t-1} + hold B u, dA = exp(dt a), hold = dt or (exp(dt a) - 1) / a:
          ddt += dh * (h_prev * a[k] * dA + Bn * u * (exact ? dA : T(1)));
          du += dh * hold * Bn;
          dA_acc[k] += dh * h_prev * dt * dA + (exact ? dh * Bn * u * dt * dt * dexprel_derivative(dt * a[k], dA) : T(0));
          carry[k] = dA * dh;  // what flows on to dh_{t-1}
        }
      }
      ddt = lane_sum<LN>(ddt);
      du = lane_sum<LN>(du);
      if (active && lane == 0) {
        ddt_s[c * kPitch + t] = ddt;
        du_s[c * kPitch + t] = du;
      }
#pragma unroll
      for (int k = 0; k < SPT; ++k) {  // dB_t, dC_t over the warp's channels (all lanes take part)
        const T b_sum = channel_sum<LN>(sum_b[k]), c_sum = channel_sum<LN>(sum_c[k]);
        const int n = lane + k * LN;
        if (writes_warp_sum && n < N) {
          redB[(t * warps + warp) * N + n] = b_sum;
          redC[(t * warps + warp) * N + n] = c_sum;
        }
      }
    }
    __syncthreads();
    // 4. Per (channel, t): du and ddelta; per (n, t): dB and dC summed over the block's warps.
    for (int i = threadIdx.x; i < p.nch * kChunk; i += blockDim.x) {
      const int cc = i / kChunk, t = i % kChunk;
      if (t >= len) continue;
      const int64_t dd = p.d0 + cc, idx = (p.b * s.dim + dd) * L + t0 + t;
      grads.du[idx] = du_s[cc * kPitch + t] + (in.D_skip ? gy_s[cc * kPitch + t] * in.D_skip[dd] : T(0));
      const T ddelta = ddt_s[cc * kPitch + t] * dsp_s[cc * kPitch + t];
      grads.ddelta[idx] = ddelta;
      dbias_s[cc * kPitch + t] += ddelta;
    }
    for (int i = threadIdx.x; i < N * kChunk; i += blockDim.x) {
      const int64_t n = i / kChunk;
      const int t = i % kChunk;
      if (t >= len) continue;
      T sum_b = T(0), sum_c = T(0);
      for (int v = 0; v < warps; ++v) {
        sum_b += redB[(t * warps + v) * N + n];
        sum_c += redC[(t * warps + v) * N + n];
      }
      const int64_t row = ((p.b * s.groups + p.g) * tiles + p.tile) * 2;
      work[w.bc + (row * N + n) * L + t0 + t] = sum_b;
      work[w.bc + ((row + 1) * N + n) * L + t0 + t] = sum_c;
    }
    __syncthreads();
  }
  if (active) {
#pragma unroll
    for (int k = 0; k < SPT; ++k) {
      const int n = lane + k * LN;
      if (n >= N) continue;
      const int64_t bdn = (p.b * s.dim + d) * N + n;
      if (grads.dh0) grads.dh0[bdn] = carry[k];  // dL/dh_{-1} = dA_0 dh_0
      work[w.dA + bdn] = dA_acc[k];
    }
  }
  for (int cc = threadIdx.x; cc < p.nch; cc += blockDim.x) {
    T sum_D = T(0), sum_bias = T(0);
    for (int t = 0; t < kChunk; ++t) {
      sum_D += dD_s[cc * kPitch + t];
      sum_bias += dbias_s[cc * kPitch + t];
    }
    work[w.dD + p.b * s.dim + p.d0 + cc] = sum_D;
    work[w.dbias + p.b * s.dim + p.d0 + cc] = sum_bias;
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

template <class T>
__global__ void scan_finish_batch_kernel(ScanGrads<T> grads, const T* work, Workspace w, ScanSizes s) {
  const int64_t DN = s.dim * s.dstate;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < DN + s.dim; i += int64_t{gridDim.x} * blockDim.x) {
    if (i < DN) {  // dA[d, n]
      T sum = T(0);
      for (int64_t b = 0; b < s.batch; ++b) sum += work[w.dA + b * DN + i];
      grads.dA[i] = sum;
      continue;
    }
    const int64_t d = i - DN;
    T sum_D = T(0), sum_bias = T(0);
    for (int64_t b = 0; b < s.batch; ++b) {
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
  return workspace_layout(s, make_plan(s, dtype_size(dtype), true).tiles).total;
}

template <class T>
void selective_scan_forward(const ScanInputs<T>& in, T* y, T* last_state, T* checkpoints, int device) {
  const ScanSizes& s = in.size;
  check_dstate(s);
  if (s.batch * s.dim == 0) return;
  DeviceGuard guard(device);
  const Plan plan = make_plan(s, sizeof(T), false);
  const int64_t blocks = s.batch * s.groups * plan.tiles;
  dispatch_plan(plan, [&]<int LN, int SPT>() {
    auto kernel = scan_forward_kernel<T, LN, SPT>;
    allow_shared(kernel, plan.shared);
    T* y_pre = checkpoints ? checkpoints + checkpoint_states_numel(s) : nullptr;
    kernel<<<static_cast<unsigned>(blocks), plan.threads(), plan.shared, current_stream()>>>(
        in, y, last_state, checkpoints, y_pre, plan.dc, plan.tiles);
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
  const Workspace w = workspace_layout(s, plan.tiles);
  const int64_t blocks = s.batch * s.groups * plan.tiles;
  cudaStream_t stream = current_stream();
  dispatch_plan(plan, [&]<int LN, int SPT>() {
    auto kernel = scan_backward_kernel<T, LN, SPT>;
    allow_shared(kernel, plan.shared);
    kernel<<<static_cast<unsigned>(blocks), plan.threads(), plan.shared, stream>>>(in, checkpoints, dy, dlast, grads,
                                                                                 workspace, w, plan.dc, plan.tiles);
  });
  CUDA_CHECK_LAUNCH();
  scan_finish_bc_kernel<T><<<grid_for(s.batch * s.groups * s.dstate * s.seqlen, 256, 1 << 16), 256, 0, stream>>>(
      grads, workspace, w, s, plan.tiles);
  scan_finish_batch_kernel<T><<<grid_for(s.dim * s.dstate + s.dim, 256, 1 << 16), 256, 0, stream>>>(grads, workspace,
                                                                                                    w, s);
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
