// The selective scan's reference: float64 plain loops written straight from the formulas in
// ops/selective_scan.h, with libm's exp/log1p/expm1, no chunks, no vectors, no threads. Every fast
// path is tested against it; it is meant to be read next to selective_scan_ref of
// state-spaces/mamba.
#include <cmath>
#include <vector>

#include "ops/cpu/selective_scan.h"

namespace mg::cpu {

namespace {

// PyTorch's softplus: log(1 + e^x), and x itself above the threshold 20.
double softplus(double x) { return x > 20.0 ? x : std::log1p(std::exp(x)); }

double silu(double x) { return x / (1.0 + std::exp(-x)); }

}  // namespace

void selective_scan_reference_cpu(const ScanInputs<double>& in, double* y, double* last_state) {
  const ScanSizes& s = in.size;
  const int64_t B = s.batch, D = s.dim, N = s.dstate, L = s.seqlen, G = s.groups;
  std::vector<double> h(N);  // the state of one channel: (N)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t d = 0; d < D; ++d) {
      const int64_t g = d / (D / G);
      const int64_t bd = b * D + d;
      const double* Bm = in.Bm + (b * G + g) * N * L;  // (N, L)
      const double* Cm = in.Cm + (b * G + g) * N * L;  // (N, L)
      for (int64_t n = 0; n < N; ++n) h[n] = in.h0 ? in.h0[bd * N + n] : 0.0;
      for (int64_t t = 0; t < L; ++t) {
        // delta'_t = softplus(delta_t + delta_bias) or delta_t + delta_bias
        double dt = in.delta[bd * L + t] + (in.delta_bias ? in.delta_bias[d] : 0.0);
        if (in.delta_softplus) dt = softplus(dt);
        const double u = in.u[bd * L + t];
        double out = 0;
        for (int64_t n = 0; n < N; ++n) {
          const double a = in.A[d * N + n];
          const double dA = std::exp(dt * a);  // zero-order hold for A
          // dBu_t = delta' B u, or the exact zero-order hold (e^{delta' a} - 1) / a B u (-> delta' B u as a -> 0)
          const double hold = !in.exact_zoh_b ? dt : (a == 0.0 ? dt : std::expm1(dt * a) / a);
          h[n] = dA * h[n] + hold * Bm[n * L + t] * u;  // h_t = dA_t h_{t-1} + dBu_t
          out += Cm[n * L + t] * h[n];                  // <C_t, h_t>
        }
        if (in.D_skip) out += in.D_skip[d] * u;
        if (in.z) out *= silu(in.z[bd * L + t]);
        y[bd * L + t] = out;
      }
      for (int64_t n = 0; n < N; ++n) last_state[bd * N + n] = h[n];
    }
  }
}

}  // namespace mg::cpu
