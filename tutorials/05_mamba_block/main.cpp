// Lesson 5: the Mamba block. Builds a models/mamba MambaMixer, lists its parameters, rebuilds its
// forward by hand from the library's ops (every projection, with its shapes), shows that the
// causal conv (and so the whole block) never looks ahead, and checks the initialisation.
#include <mambagrad.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "models/mamba/mixer.h"
#include "models/mamba/model.h"
#include "ops/conv1d.h"

using namespace mg;

namespace {
bool g_failed = false;
void check(bool ok, const std::string& what) {
  std::printf("  [%s] %s\n", ok ? "ok" : "FAIL", what.c_str());
  if (!ok) std::printf("FAIL: %s\n", what.c_str()), g_failed = true;
}
double max_abs_diff(const Tensor& a, const Tensor& b) {
  std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}
struct Stats { double mean, std, max_abs; };
Stats stats(const Tensor& t) {
  std::vector<double> v = t.to_vector<double>();
  double s = 0, s2 = 0, m = 0;
  for (double x : v) s += x, s2 += x * x, m = std::max(m, std::abs(x));
  double mean = s / v.size();
  return {mean, std::sqrt(s2 / v.size() - mean * mean), m};
}
void print_shape(const char* name, const Tensor& t, const char* what) {
  std::printf("  %-8s %-16s %s\n", name, str(t.shape()).c_str(), what);
}
}  // namespace

// The mixer's forward written out op by op (what models/mamba/mixer.cpp does, minus the fused
// scan): hidden (B, L, d_model) -> (B, L, d_model).
Tensor mixer_by_hand(mamba::MambaMixer& m, const Tensor& hidden, bool print) {
  int64_t Di = m.d_inner, N = m.d_state, R = m.dt_rank, B = hidden.size(0), L = hidden.size(1);
  Tensor xz = linear(hidden, m.in_proj->weight);               // in_proj: (B, L, 2 d_inner)
  Tensor x = narrow(xz, 2, 0, Di).transpose(1, 2);             // (B, d_inner, L): the SSM branch
  Tensor z = narrow(xz, 2, Di, Di).transpose(1, 2);            // (B, d_inner, L): the gate branch
  Tensor conv = causal_conv1d(x, m.conv1d->weight.view({Di, m.d_conv}), m.conv1d->bias);
  Tensor u = silu(conv);                                       // (B, d_inner, L)
  Tensor x_dbl = linear(u.transpose(1, 2), m.x_proj->weight);  // x_proj: (B, L, R + 2N)
  Tensor dt = narrow(x_dbl, 2, 0, R);                          // (B, L, R)
  Tensor Bm = narrow(x_dbl, 2, R, N);                          // (B, L, N): input -> state
  Tensor Cm = narrow(x_dbl, 2, R + N, N);                      // (B, L, N): state -> output
  Tensor delta = softplus(add(linear(dt, m.dt_proj->weight), m.dt_proj->bias));  // (B, L, d_inner)
  Tensor A = neg(exp(m.A_log));                                // (d_inner, N), all negative
  if (print) {
    print_shape("xz", xz, "in_proj(hidden), split into x | z");
    print_shape("x, z", x, "each (B, d_inner, L)");
    print_shape("u", u, "silu(causal_conv1d(x))");
    print_shape("x_dbl", x_dbl, "x_proj(u), split into dt | B | C");
    print_shape("dt", dt, "low-rank step size");
    print_shape("B, C", Bm, "each (B, L, N): chosen per token");
    print_shape("delta", delta, "softplus(dt_proj(dt) + bias)");
    print_shape("A", A, "-exp(A_log)");
  }
  // The selective scan as a plain loop: h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t,
  // y_t = C_t . h_t + D u_t, then the gate y_t *= silu(z_t).
  std::vector<float> uv = u.contiguous().to_vector<float>(), dv = delta.contiguous().to_vector<float>();
  std::vector<float> bv = Bm.contiguous().to_vector<float>(), cv = Cm.contiguous().to_vector<float>();
  std::vector<float> av = A.to_vector<float>(), Dv = m.D.to_vector<float>(), zv = z.contiguous().to_vector<float>();
  std::vector<float> y(B * Di * L);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t d = 0; d < Di; ++d) {
      std::vector<double> h(N, 0.0);
      for (int64_t t = 0; t < L; ++t) {
        double ut = uv[(b * Di + d) * L + t], dl = dv[(b * L + t) * Di + d], acc = 0;
        for (int64_t n = 0; n < N; ++n) {
          h[n] = std::exp(dl * av[d * N + n]) * h[n] + dl * bv[(b * L + t) * N + n] * ut;
          acc += cv[(b * L + t) * N + n] * h[n];
        }
        double zt = zv[(b * Di + d) * L + t];
        y[(b * Di + d) * L + t] = static_cast<float>((acc + Dv[d] * ut) * zt / (1 + std::exp(-zt)));
      }
    }
  Tensor yt = from_vector(y, {B, Di, L});
  if (print) print_shape("y", yt, "scan + D u, gated by silu(z)");
  return linear(yt.transpose(1, 2), m.out_proj->weight);      // out_proj: (B, L, d_model)
}

int lesson() {
  mamba::MambaConfig config;  // the official defaults: d_state 16, d_conv 4, expand 2, dt in [0.001, 0.1]
  config.d_model = 64;
  config.n_layer = 4;
  Generator gen(0);
  mamba::MambaMixer mixer(config, gen);
  const int64_t d = config.d_model, Di = config.d_inner(), N = config.d_state, K = config.d_conv;
  const int64_t R = config.resolved_dt_rank();

  std::printf("1. Parameters of a MambaMixer (d_model %ld, d_inner %ld, N %ld, d_conv %ld, dt_rank %ld)\n",
              (long)d, (long)Di, (long)N, (long)K, (long)R);
  int64_t total = 0;
  for (const auto& [name, p] : mixer.named_parameters()) {
    std::printf("  %-16s %-14s %7ld\n", name.c_str(), str(p.shape()).c_str(), (long)p.numel());
    total += p.numel();
  }
  int64_t formula = 3 * d * Di + Di * (K + 2 * R + 3 * N + 3);
  std::printf("  total %ld; formula 3 d d_inner + d_inner (d_conv + 2 dt_rank + 3N + 3) = %ld\n", (long)total,
              (long)formula);
  check(total == formula && mixer.num_parameters() == formula, "parameter count matches the formula");

  std::printf("\n2. The forward, op by op, for hidden (B=2, L=12, d_model)\n");
  Tensor hidden = randn({2, 12, d}, gen);
  Tensor by_hand = mixer_by_hand(mixer, hidden, true);
  Tensor library = mixer.forward(hidden);
  double diff = max_abs_diff(by_hand, library);
  std::printf("  max |by hand - MambaMixer::forward| = %.2e\n", diff);
  check(diff < 1e-4, "the hand-written forward equals the library's within 1e-4");

  std::printf("\n3. Causality: change the input at t = 7 only\n");
  Tensor x = randn({1, 4, 12}, gen);  // (B, C, L) for the conv alone
  Tensor w = randn({4, K}, gen);
  std::vector<float> xv = x.to_vector<float>();
  for (int64_t c = 0; c < 4; ++c) xv[c * 12 + 7] += 1.0f;
  Tensor x2 = from_vector(xv, {1, 4, 12});
  Tensor conv_delta = sub(causal_conv1d(x2, w), causal_conv1d(x, w)).to(DType::Float64);
  std::vector<float> hv = hidden.to_vector<float>();
  for (int64_t j = 0; j < d; ++j) hv[7 * d + j] += 1.0f;  // batch 0, t = 7
  Tensor mixer_delta = sub(mixer.forward(from_vector(hv, {2, 12, d})), library);
  std::printf("  t   max|conv change|  max|mixer change|\n");
  double before_conv = 0, before_mixer = 0, at_mixer = 0, after_conv_far = 0;
  for (int64_t t = 0; t < 12; ++t) {
    double c = stats(narrow(conv_delta, 2, t, 1)).max_abs;
    double mx = stats(narrow(narrow(mixer_delta, 0, 0, 1), 1, t, 1)).max_abs;
    std::printf("  %2ld  %15.3e  %16.3e\n", (long)t, c, mx);
    if (t < 7) before_conv = std::max(before_conv, c), before_mixer = std::max(before_mixer, mx);
    if (t == 7) at_mixer = mx;
    if (t >= 7 + K) after_conv_far = std::max(after_conv_far, c);
  }
  check(before_conv == 0 && before_mixer < 1e-6, "outputs before t = 7 do not change (conv and whole mixer)");
  check(at_mixer > 1e-3, "the mixer's output at t = 7 does change");
  check(after_conv_far == 0, "the conv forgets the change after d_conv steps (t >= 7 + d_conv)");
  check(stats(narrow(mixer_delta, 0, 1, 1)).max_abs < 1e-6, "the other sequence of the batch is untouched");

  std::printf("\n4. Initialisation\n");
  std::vector<float> a_log = mixer.A_log.to_vector<float>();
  double a_err = 0;
  for (int64_t c = 0; c < Di; ++c)
    for (int64_t n = 0; n < N; ++n) a_err = std::max(a_err, std::abs(a_log[c * N + n] - std::log(n + 1.0)));
  std::vector<float> a0 = narrow(neg(exp(mixer.A_log)), 0, 0, 1).to_vector<float>();
  std::printf("  A = -exp(A_log), channel 0: %g %g %g ... %g\n", a0[0], a0[1], a0[2], a0[N - 1]);
  check(a_err < 1e-6, "A_log = log(1..N) in every channel (S4D-real: A = -1, -2, ..., -N)");
  check(stats(sub(mixer.D, 1.0)).max_abs == 0, "D = 1 (the skip connection starts fully open)");
  // softplus(bias) is each channel's step size before the per-token part dt_proj(dt) is added.
  std::vector<float> dt = softplus(mixer.dt_proj->bias).to_vector<float>();
  double lo = 1e9, hi = 0, log_mean = 0;
  for (float v : dt) lo = std::min<double>(lo, v), hi = std::max<double>(hi, v), log_mean += std::log(v) / Di;
  std::printf("  dt = softplus(dt_proj.bias): min %.5f  geometric mean %.5f  max %.5f\n", lo, std::exp(log_mean), hi);
  check(lo >= config.dt_min * (1 - 1e-5) && hi <= config.dt_max * (1 + 1e-5), "every dt lies in [dt_min, dt_max]");
  check(hi / lo > 30, "dt spans more than 1.5 decades across channels");
  // log dt ~ U(log 0.001, log 0.1): mean log(0.01), standard error 1.33 / sqrt(d_inner) = 0.12.
  check(std::abs(log_mean - std::log(0.01)) < 0.4, "dt is log-uniform: geometric mean near 0.01");
  std::printf("  memory of a state mode: about 1 / (dt |A|) steps\n");
  std::printf("    dt %.4f, A = -1: %7.1f steps    dt %.4f, A = -%ld: %5.2f steps\n", lo, 1 / lo, hi, (long)N,
              1 / (hi * N));
  double dt_bound = 1 / std::sqrt(static_cast<double>(R));
  Stats wdt = stats(mixer.dt_proj->weight);
  std::printf("  dt_proj.weight: std %.4f (uniform +-%.3f has std %.4f)\n", wdt.std, dt_bound, dt_bound / std::sqrt(3.0));
  check(wdt.max_abs <= dt_bound && std::abs(wdt.std / (dt_bound / std::sqrt(3.0)) - 1) < 0.15,
        "dt_proj.weight ~ U(-dt_rank^-1/2, dt_rank^-1/2)");
  Stats win = stats(mixer.in_proj->weight);
  double in_bound = 1 / std::sqrt(static_cast<double>(d));
  std::printf("  in_proj.weight: std %.4f (uniform +-1/sqrt(d_model) has std %.4f)\n", win.std, in_bound / std::sqrt(3.0));
  check(win.max_abs <= in_bound && std::abs(win.std / (in_bound / std::sqrt(3.0)) - 1) < 0.05,
        "in_proj.weight ~ U(+-1/sqrt(d_model)) (PyTorch's Linear default)");
  // out_proj is re-drawn by the language model and scaled by 1/sqrt(n_layer).
  mamba::MambaLM lm(config, gen);
  auto& first = *lm.backbone->layers->at<mamba::ResidualBlock>(0)->mixer;
  Stats wout = stats(first.out_proj->weight);
  double out_std = 1 / std::sqrt(static_cast<double>(Di)) / std::sqrt(3.0) / std::sqrt(static_cast<double>(config.n_layer));
  std::printf("  MambaLM (n_layer %ld) out_proj.weight: std %.4f, expected %.4f = U(+-1/sqrt(d_inner)) / sqrt(n_layer)\n",
              (long)config.n_layer, wout.std, out_std);
  check(std::abs(wout.std / out_std - 1) < 0.05, "out_proj.weight is scaled by 1/sqrt(n_layer)");
  Stats emb = stats(lm.backbone->embeddings->weight);
  check(std::abs(emb.std / 0.02 - 1) < 0.1, "embeddings ~ N(0, 0.02)");

  std::printf(g_failed ? "\nsome checks FAILED\n" : "\nall checks passed\n");
  return g_failed ? 1 : 0;
}

int main() { return mg::run_main(lesson); }  // an escaped error: one "error:" line, exit 1
