// A work-efficient (Blelloch) parallel scan of the linear recurrence, and the selective scan's
// forward built on it (ops/cpu/parallel_scan.h has the idea). On the CPU the rounds run one after
// the other and the parallelism is across channels; the structure is the GPU kernel's blueprint.
#include "ops/cpu/parallel_scan.h"

#include <cmath>
#include <vector>

#include "ops/cpu/parallel.h"

namespace mg::cpu {

namespace {

struct Affine {
  double a = 1, b = 0;  // h -> a h + b; the default is the identity
};

// x then y: h -> y.a (x.a h + x.b) + y.b
Affine compose(Affine x, Affine y) { return {x.a * y.a, y.a * x.b + y.b}; }

// Blelloch's exclusive scan, in place, of a power-of-two number of elements: x[i] becomes
// x_0 o ... o x_{i-1} (the identity for i = 0). Returns the total x_0 o ... o x_{M-1}.
Affine blelloch_exclusive_scan(std::vector<Affine>& x) {
  const int64_t M = static_cast<int64_t>(x.size());
  // Up-sweep (reduce): after the round of width 2s, x[i] holds the total of the 2s elements
  // ending at i, for i = 2s - 1, 4s - 1, ... The left half's total is x[i - s].
  for (int64_t s = 1; s < M; s *= 2)
    for (int64_t i = 2 * s - 1; i < M; i += 2 * s) x[i] = compose(x[i - s], x[i]);
  Affine total = x[M - 1];
  // Down-sweep: x[i] now receives the prefix before its block of width 2s. The left half's
  // prefix is that same prefix; the right half's is the prefix followed by the left half.
  x[M - 1] = Affine{};
  for (int64_t s = M / 2; s >= 1; s /= 2) {
    for (int64_t i = 2 * s - 1; i < M; i += 2 * s) {
      Affine left_total = x[i - s];
      x[i - s] = x[i];
      x[i] = compose(x[i], left_total);
    }
  }
  return total;
}

}  // namespace

void linear_recurrence_scan(double* a, double* b, int64_t length) {
  if (length <= 0) return;
  int64_t M = 1;
  while (M < length) M *= 2;
  std::vector<Affine> x(M);  // padded with identities
  for (int64_t t = 0; t < length; ++t) x[t] = {a[t], b[t]};
  Affine total = blelloch_exclusive_scan(x);
  // The inclusive prefix at t is the exclusive one at t + 1 (and the total at the end).
  for (int64_t t = 0; t < length; ++t) {
    Affine inclusive = t + 1 < M ? x[t + 1] : total;
    a[t] = inclusive.a;
    b[t] = inclusive.b;
  }
}

void selective_scan_parallel_cpu(const ScanInputs<double>& in, double* y, double* last_state) {
  const ScanSizes& s = in.size;
  const int64_t D = s.dim, N = s.dstate, L = s.seqlen, G = s.groups;
  parallel_for(0, s.batch * D, 1, [&](int64_t begin, int64_t end) {
    std::vector<double> a(L), b(L), delta(L);
    for (int64_t bd = begin; bd < end; ++bd) {
      const int64_t d = bd % D, bg = bd / D * G + d / (D / G);
      const double* u = in.u + bd * L;
      for (int64_t t = 0; t < L; ++t) {
        double dt = in.delta[bd * L + t] + (in.delta_bias ? in.delta_bias[d] : 0.0);
        delta[t] = in.delta_softplus && dt <= 20.0 ? std::log1p(std::exp(dt)) : dt;
      }
      for (int64_t t = 0; t < L; ++t) y[bd * L + t] = in.D_skip ? in.D_skip[d] * u[t] : 0.0;
      for (int64_t n = 0; n < N; ++n) {
        const double A = in.A[d * N + n];
        const double* Bm = in.Bm + (bg * N + n) * L;
        const double* Cm = in.Cm + (bg * N + n) * L;
        // x_t = (dA_t, dBu_t); the initial state enters as x_0's offset: h_0 = dA_0 h0 + dBu_0.
        for (int64_t t = 0; t < L; ++t) {
          const double hold = !in.exact_zoh_b ? delta[t] : (A == 0.0 ? delta[t] : std::expm1(delta[t] * A) / A);
          a[t] = std::exp(delta[t] * A);
          b[t] = hold * Bm[t] * u[t];
        }
        if (in.h0 && L > 0) b[0] += a[0] * in.h0[bd * N + n];
        linear_recurrence_scan(a.data(), b.data(), L);  // now b[t] = h_t
        for (int64_t t = 0; t < L; ++t) y[bd * L + t] += Cm[t] * b[t];
        last_state[bd * N + n] = L > 0 ? b[L - 1] : (in.h0 ? in.h0[bd * N + n] : 0.0);
      }
      if (in.z)
        for (int64_t t = 0; t < L; ++t) y[bd * L + t] *= in.z[bd * L + t] / (1.0 + std::exp(-in.z[bd * L + t]));
    }
  });
}

}  // namespace mg::cpu
