#include "ops/cpu/selective_scan_step.h"

#include "ops/cpu/fast_math.h"
#include "ops/cpu/parallel.h"

namespace mg::cpu {

namespace {
// h = exp(dt A) h + drive B over the N lanes of one channel; returns <C, h>. The pointers never
// alias (h is the state; A, B, C are inputs), which __restrict tells the compiler so that it
// vectorizes the loop without a runtime overlap check and a scalar fallback.
template <class T>
inline T step_lanes(int64_t N, T dt, T drive, const T* __restrict A, const T* __restrict Bv, const T* __restrict Cv,
                    T* __restrict h) {
  T out = 0;
#pragma omp simd reduction(+ : out)
  for (int64_t n = 0; n < N; ++n) {
    T hn = fast_exp(dt * A[n]) * h[n] + drive * Bv[n];
    h[n] = hn;
    out += Cv[n] * hn;
  }
  return out;
}
}  // namespace

template <class T>
void selective_scan_step_cpu(const ScanInputs<T>& in, T* y, T* state) {
  const ScanSizes& s = in.size;
  const int64_t N = s.dstate, D = s.dim, G = s.groups, per_group = D / G;
  for (int64_t b = 0; b < s.batch; ++b) {
    parallel_for(0, D, std::max<int64_t>(1, 4096 / N), [&](int64_t begin, int64_t end) {
      for (int64_t d = begin; d < end; ++d) {
        const int64_t bd = b * D + d, bg = b * G + d / per_group;
        T dt = in.delta[bd] + (in.delta_bias ? in.delta_bias[d] : T(0));
        if (in.delta_softplus) dt = fast_softplus(dt);
        const T u = in.u[bd];
        T out = step_lanes(N, dt, dt * u, in.A + d * N, in.Bm + bg * N, in.Cm + bg * N, state + bd * N);
        if (in.D_skip) out += in.D_skip[d] * u;
        if (in.z) out *= fast_silu(in.z[bd]);
        y[bd] = out;
      }
    });
  }
}

template void selective_scan_step_cpu<float>(const ScanInputs<float>&, float*, float*);
template void selective_scan_step_cpu<double>(const ScanInputs<double>&, double*, double*);

}  // namespace mg::cpu
