#include "ops/cpu/selective_scan_step.h"

#include <algorithm>

#include "ops/cpu/fast_math.h"
#include "ops/cpu/parallel.h"

namespace mg::cpu {

namespace {

// Channels are processed in blocks: the per-channel scalars (softplus of delta, silu of z) are
// computed for a whole block in loops that vectorize across channels, and only the state update
// runs channel by channel, vectorized across its N lanes. (Computing the scalars inside the
// channel loop made them scalar code: the step took 2x as long at N = 16.)
constexpr int64_t kStepBlock = 64;

// Lanes of the state handled together: 16 floats are one AVX-512 register (two AVX2 ones).
constexpr int64_t kStepLanes = 16;

// Sum of kStepLanes values as a tree (8 + 8, 4 + 4, ...): a few vector adds. A plain `out +=` loop
// must add in order without -ffast-math, which GCC compiles to 16 dependent scalar adds per
// channel, and that was half the step's time.
template <class T>
MG_FAST_MATH_INLINE T tree_sum(T* v) {
#pragma GCC unroll 4
  for (int64_t width = kStepLanes / 2; width >= 1; width /= 2)
#pragma GCC unroll 8
    for (int64_t n = 0; n < width; ++n) v[n] += v[n + width];
  return v[0];
}

// h = exp(dt A) h + drive B over the N lanes of one channel; returns <C, h>. The pointers never
// alias (h is the state; A, B, C are inputs), which __restrict tells the compiler so that it
// vectorizes without a runtime overlap check. kN > 0 is N known at compile time (Mamba's N = 16,
// and 8, 32, 64): the lanes then fill whole registers with no masking, 2.3x faster than a runtime N.
template <int64_t kN, class T>
MG_FAST_MATH_INLINE T step_lanes(int64_t runtime_N, T dt, T drive, const T* __restrict A, const T* __restrict Bv,
                                 const T* __restrict Cv, T* __restrict h) {
  const int64_t N = kN > 0 ? kN : runtime_N;
  T out = 0;
  for (int64_t n0 = 0; n0 < N; n0 += kStepLanes) {
    const int64_t lanes = std::min(kStepLanes, N - n0);  // a constant when kN is
    T products[kStepLanes] = {};
    for (int64_t n = 0; n < lanes; ++n) {
      T hn = fast_exp(dt * A[n0 + n]) * h[n0 + n] + drive * Bv[n0 + n];
      h[n0 + n] = hn;
      products[n] = Cv[n0 + n] * hn;
    }
    out += tree_sum(products);
  }
  return out;
}

// Channels [d0, d0 + nd) of batch row b; nd <= kStepBlock.
template <int64_t kN, class T>
void step_block(const ScanInputs<T>& in, T* y, T* state, int64_t b, int64_t d0, int64_t nd) {
  const ScanSizes& s = in.size;
  const int64_t N = s.dstate, D = s.dim, per_group = s.channels_per_group();
  const int64_t bd0 = b * D + d0;
  const T* u = in.u + bd0;
  T dt[kStepBlock], out[kStepBlock];
  for (int64_t i = 0; i < nd; ++i) dt[i] = in.delta[bd0 + i];
  if (in.delta_bias)
    for (int64_t i = 0; i < nd; ++i) dt[i] += in.delta_bias[d0 + i];
  if (in.delta_softplus)
    for (int64_t i = 0; i < nd; ++i) dt[i] = fast_softplus(dt[i]);
  for (int64_t i = 0; i < nd; ++i) {
    const int64_t d = d0 + i, bg = b * s.groups + d / per_group;
    out[i] = step_lanes<kN>(N, dt[i], dt[i] * u[i], in.A + d * N, in.Bm + bg * N, in.Cm + bg * N,
                            state + (bd0 + i) * N);
  }
  if (in.D_skip)
    for (int64_t i = 0; i < nd; ++i) out[i] += in.D_skip[d0 + i] * u[i];
  if (in.z)
    for (int64_t i = 0; i < nd; ++i) out[i] *= fast_silu(in.z[bd0 + i]);
  std::copy(out, out + nd, y + bd0);
}

template <int64_t kN, class T>
void step_channels(const ScanInputs<T>& in, T* y, T* state, int64_t d_begin, int64_t d_end) {
  for (int64_t b = 0; b < in.size.batch; ++b)
    for (int64_t d0 = d_begin; d0 < d_end; d0 += kStepBlock)
      step_block<kN>(in, y, state, b, d0, std::min(kStepBlock, d_end - d0));
}

}  // namespace

template <class T>
void selective_scan_step_channels_cpu(const ScanInputs<T>& in, T* y, T* state, int64_t d_begin, int64_t d_end) {
  switch (in.size.dstate) {
    case 8: return step_channels<8>(in, y, state, d_begin, d_end);
    case 16: return step_channels<16>(in, y, state, d_begin, d_end);
    case 32: return step_channels<32>(in, y, state, d_begin, d_end);
    case 64: return step_channels<64>(in, y, state, d_begin, d_end);
    default: return step_channels<0>(in, y, state, d_begin, d_end);
  }
}

template <class T>
void selective_scan_step_cpu(const ScanInputs<T>& in, T* y, T* state) {
  // Threads take whole channel blocks (every batch row), enough for ~4096 state updates a chunk
  // (~4 us): a finer split costs more in scheduling than it saves.
  const int64_t D = in.size.dim, updates_per_channel = std::max<int64_t>(in.size.batch * in.size.dstate, 1);
  const int64_t blocks = std::max<int64_t>(1, 4096 / (kStepBlock * updates_per_channel));
  const int64_t grain = blocks * kStepBlock;
  parallel_for(0, D, grain, [&](int64_t begin, int64_t end) {
    selective_scan_step_channels_cpu(in, y, state, begin, end);
  });
}

template void selective_scan_step_cpu<float>(const ScanInputs<float>&, float*, float*);
template void selective_scan_step_cpu<double>(const ScanInputs<double>&, double*, double*);
template void selective_scan_step_channels_cpu<float>(const ScanInputs<float>&, float*, float*, int64_t, int64_t);
template void selective_scan_step_channels_cpu<double>(const ScanInputs<double>&, double*, double*, int64_t, int64_t);

}  // namespace mg::cpu
