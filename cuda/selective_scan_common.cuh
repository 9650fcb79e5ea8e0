#pragma once
// What the selective scan's two files share (cuda/selective_scan.cu: the design, the forward and
// the recurrent step; cuda/selective_scan_backward.cu: the backward): the chunk and lane layout,
// the launch plan, the split along L, block placement and dispatch. Two files, so that the two
// halves of this template-heavy code compile at once (one of them alone took most of a clean
// build's time). Internal linkage: each file has its own copy of what it uses.
#include <algorithm>

#include "cuda/device_math.cuh"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"
#include "cuda/scan_segments.h"

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

// The carry over segments (see the top of cuda/selective_scan.cu), one thread per (b, d, n): walks
// the segments in order (the forward: first to last from h0; the backward: last to first from
// dlast), gives each its entering value, start[s] = V, then V := exp(a sum delta'_s) V + end[s]
// (the last segment walked passes nothing on: its end was not computed).
template <class T>
__global__ void scan_carry_kernel(ScanSizes s, const T* A, const T* first, SegmentArgs<T> seg, bool reverse) {
  const int64_t DN = s.dim * s.dstate, S = seg.count;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < s.batch * DN; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t b = i / DN, dn = i % DN, d = dn / s.dstate;
    const T a2 = A[dn] * kLog2e<T>;
    T V = first ? first[i] : T(0);
    for (int64_t j = 0; j < S; ++j) {
      const int64_t item = b * S + (reverse ? S - 1 - j : j);
      seg.start[item * DN + dn] = V;
      if (j + 1 < S) V = exp2_ftz(seg.dsum[item * s.dim + d] * a2) * V + seg.end[item * DN + dn];
    }
  }
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
}  // namespace mg::cuda
