// Lesson 03: the selective scan. README.md walks through this file top to bottom.
// Every number the lesson quotes is printed here and checked: the program exits 1 if one is off.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <mambagrad.h>

#include "ops/cpu/parallel.h"
#include "ops/selective_scan.h"

using namespace mg;

static int failures = 0;
static void check(bool ok, const char* what) {
  if (!ok) std::printf("FAIL: %s\n", what), ++failures;
}

// ---- 1. Selective copying: M data tokens hidden among noise tokens; keep the data, drop the noise.
constexpr int64_t kTrials = 64, kLength = 64, kData = 4, kState = 4;
// e^{A_n} for a data token (delta = 1): the four "speeds" at which the four states forget.
const std::vector<double> kDecay{0.15, 0.4, 0.65, 0.9};

struct Batch {
  std::vector<double> value, marker;  // (trials, L): each token's value, and 1 on data tokens
};

// Data tokens at kData random positions, noise tokens elsewhere; values uniform in [-1, 1).
static Batch make_batch(Generator& gen) {
  Batch b{std::vector<double>(kTrials * kLength), std::vector<double>(kTrials * kLength, 0.0)};
  for (double& v : b.value) v = 2 * gen.next_double() - 1;
  for (int64_t i = 0; i < kTrials; ++i)
    for (int64_t placed = 0; placed < kData;) {
      int64_t t = gen.next_int(0, kLength);
      if (b.marker[i * kLength + t] == 0) b.marker[i * kLength + t] = 1, ++placed;
    }
  return b;
}

// One channel, kState states. Each token is embedded as x_t = (value, marker); u_t = value.
// Selective: delta_t = softplus(w . x_t + b), a projection of the token like Mamba's dt_proj,
// set by hand: softplus(-20) = 2e-9 on noise, softplus(log(e - 1)) = 1 on data.
// Time-invariant (LTI): delta_t = lti_delta on every token. B_t = 1 in both, and C_t reads the
// slowest state (n = 3), so that y_t = h_t[3] shows how the state evolves.
static SelectiveScanResult scan(const Batch& b, bool selective, double lti_delta) {
  Tensor x = from_vector<double>(b.value, {kTrials, kLength, 1});
  x = concat({x, from_vector<double>(b.marker, {kTrials, kLength, 1})}, 2);  // x: (T, L, 2)
  Tensor u = x.narrow(2, 0, 1).transpose(1, 2);                              // u: (T, 1, L)
  const double w = 20 + std::log(std::exp(1.0) - 1);  // weight of the marker: data tokens get -20 + w
  Tensor delta = selective ? linear(x, from_vector<double>({0.0, w}, {1, 2}), from_vector<double>({-20.0}, {1}))
                           : full({kTrials, kLength, 1}, lti_delta, {.dtype = DType::Float64});
  delta = delta.transpose(1, 2);  // (T, 1, L)
  std::vector<double> a;
  for (double z : kDecay) a.push_back(std::log(z));  // e^{delta A} = z at delta = 1
  Tensor A = from_vector<double>(a, {1, kState});
  Tensor Bm = ones({kTrials, kState, kLength}, {.dtype = DType::Float64});  // (T, N, L)
  Tensor Cm = concat({zeros({kTrials, kState - 1, kLength}, {.dtype = DType::Float64}),
                      ones({kTrials, 1, kLength}, {.dtype = DType::Float64})}, 1);
  SelectiveScanArgs args;
  args.delta_softplus = selective;
  return selective_scan(u, delta, A, Bm, Cm, args);  // y (T, 1, L), last_state (T, 1, N)
}
static std::vector<double> final_state(const Batch& b, bool selective, double lti_delta) {
  return scan(b, selective, lti_delta).last_state.to_vector<double>();
}

// The first sequence as a picture: its tokens as bars (data black, noise grey) and the slowest
// state h_t[3] of both models over time.
static void write_svg(const char* path, const Batch& b, const std::vector<double>& lti, const std::vector<double>& sel) {
  const double W = 720, H = 270, left = 20, right = 170, mid = 145, unit = 45;  // unit: pixels per 1.0
  auto px = [&](int64_t t) { return left + (t + 0.5) * (W - left - right) / kLength; };
  std::string s = str("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"", W, "\" height=\"", H,
                      "\" font-family=\"sans-serif\" font-size=\"12\"><rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
                      "<text x=\"", left, "\" y=\"22\" font-size=\"15\">Selective copying: one sequence and the slowest state ",
                      "h_t[3] of each model</text>\n",
                      "<line x1=\"", left, "\" x2=\"", W - right, "\" y1=\"", mid, "\" y2=\"", mid, "\" stroke=\"#bbb\"/>\n");
  for (int64_t t = 0; t < kLength; ++t) {
    double v = b.value[t] * unit, data = b.marker[t];
    s += str("<rect x=\"", px(t) - 2.5, "\" y=\"", mid - std::max(v, 0.0), "\" width=\"5\" height=\"", std::abs(v),
             "\" fill=\"", data ? "#000" : "#d0d0d0", "\"/>\n");
  }
  const char* names[] = {"LTI, delta = 0.25", "selective"};
  const char* colors[] = {"#d62728", "#1f77b4"};
  for (int k = 0; k < 2; ++k) {
    std::string d;
    for (int64_t t = 0; t < kLength; ++t) d += str(t ? " L" : "M", px(t), ",", mid - (k ? sel : lti)[t] * unit);
    s += str("<path d=\"", d, "\" fill=\"none\" stroke=\"", colors[k], "\" stroke-width=\"2\"/>\n<text x=\"",
             W - right + 10, "\" y=\"", 60 + 20 * k, "\" fill=\"", colors[k], "\">", names[k], "</text>\n");
  }
  s += str("<text x=\"", W - right + 10, "\" y=\"100\">black bars: data</text><text x=\"", W - right + 10,
           "\" y=\"120\" fill=\"#999\">grey bars: noise</text><text x=\"", left, "\" y=\"", H - 10,
           "\">time t = 0 .. 63 (bar height: the token's value u_t)</text>\n");
  std::ofstream(path) << s << "</svg>\n";
}

// || h1 - h2 || / || h1 || over the whole batch.
static double relative_change(const std::vector<double>& h1, const std::vector<double>& h2) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < h1.size(); ++i) diff += (h1[i] - h2[i]) * (h1[i] - h2[i]), norm += h1[i] * h1[i];
  return std::sqrt(diff / norm);
}

// With delta = 1 on data and ~0 on noise, h_n = sum_k z_n^{M-1-k} v_k over the data values v_k:
// a 4x4 Vandermonde system. Solve it (Gaussian elimination) and return max |v_k - decoded|.
static double decode_error(const Batch& b, const std::vector<double>& state) {
  double worst = 0;
  for (int64_t i = 0; i < kTrials; ++i) {
    double m[kState][kData + 1];
    for (int64_t n = 0; n < kState; ++n) {
      for (int64_t k = 0; k < kData; ++k) m[n][k] = std::pow(kDecay[n], kData - 1 - k);
      m[n][kData] = state[i * kState + n];
    }
    for (int64_t c = 0; c < kData; ++c)  // elimination (the system is small and well enough posed)
      for (int64_t r = c + 1; r < kState; ++r)
        for (int64_t k = kData; k >= c; --k) m[r][k] -= m[r][c] / m[c][c] * m[c][k];
    double v[kData];
    for (int64_t k = kData - 1; k >= 0; --k) {
      v[k] = m[k][kData];
      for (int64_t j = k + 1; j < kData; ++j) v[k] -= m[k][j] * v[j];
      v[k] /= m[k][k];
    }
    int64_t k = 0;  // the data values, in order
    for (int64_t t = 0; t < kLength; ++t)
      if (b.marker[i * kLength + t] == 1) worst = std::max(worst, std::abs(v[k++] - b.value[i * kLength + t]));
  }
  return worst;
}

static void selective_copying() {
  std::printf("== 1. selective copying: %lld data tokens among %lld noise tokens, %lld sequences\n", (long long)kData,
              (long long)(kLength - kData), (long long)kTrials);
  Generator gen(3);
  Batch batch = make_batch(gen);
  Batch new_noise = batch, moved = make_batch(gen);  // same data, other noise; same data, other places
  for (size_t i = 0; i < batch.value.size(); ++i)
    if (batch.marker[i] == 0) new_noise.value[i] = 2 * gen.next_double() - 1;
  for (int64_t i = 0; i < kTrials; ++i)  // moved: copy the data values, in order, into new places
    for (int64_t t = 0, k = 0; t < kLength; ++t)
      if (moved.marker[i * kLength + t] == 1) {
        while (batch.marker[i * kLength + k] == 0) ++k;
        moved.value[i * kLength + t] = batch.value[i * kLength + k++];
      }
  std::printf("  model              state change: noise resampled   data moved\n");
  for (double lti : {0.05, 0.25, 1.0}) {
    std::vector<double> h = final_state(batch, false, lti);
    double noise = relative_change(h, final_state(new_noise, false, lti));
    double place = relative_change(h, final_state(moved, false, lti));
    std::printf("  LTI, delta = %-4g                  %-10.3f      %.3f\n", lti, noise, place);
    check(noise > 0.2, "the time-invariant state is corrupted by the noise");
  }
  std::vector<double> h = final_state(batch, true, 0);
  double noise = relative_change(h, final_state(new_noise, true, 0));
  double place = relative_change(h, final_state(moved, true, 0));
  double error = decode_error(batch, h);
  std::printf("  selective                          %-10.2e      %.2e\n", noise, place);
  std::printf("  selective: data values decoded from the final state, max error %.2e\n", error);
  check(noise < 1e-6 && place < 1e-6, "the selective state ignores the noise and where the data sat");
  check(error < 1e-5, "the selective state holds the data tokens, in order");
  std::vector<double> lti = scan(batch, false, 0.25).y.to_vector<double>(), sel = scan(batch, true, 0).y.to_vector<double>();
  write_svg("selective_copying.svg", batch, lti, sel);  // the first sequence: y[0:L]
  std::printf("  wrote selective_copying.svg\n");
}

// ---- 2. The recurrence as a plain loop, against the library's reference and fused kernel.
struct Problem {
  int64_t B, D, N, L;
  std::vector<double> u, delta, A, Bm, Cm, D_skip, z;  // u, delta, z: (B, D, L); A: (D, N); Bm, Cm: (B, N, L)
};

static double silu(double x) { return x / (1 + std::exp(-x)); }

// y_t = (<C_t, h_t> + D u_t) silu(z_t),  h_t = exp(delta'_t A) h_{t-1} + delta'_t B_t u_t,
// delta'_t = softplus(delta_t). The state of one channel is N numbers; channels are independent.
static std::vector<double> naive_scan(const Problem& p) {
  std::vector<double> y(p.B * p.D * p.L), h(p.N);
  for (int64_t b = 0; b < p.B; ++b)
    for (int64_t d = 0; d < p.D; ++d) {
      std::fill(h.begin(), h.end(), 0.0);
      for (int64_t t = 0; t < p.L; ++t) {
        const int64_t i = (b * p.D + d) * p.L + t;
        const double dt = std::log1p(std::exp(p.delta[i])), u = p.u[i];
        double out = 0;
        for (int64_t n = 0; n < p.N; ++n) {
          const int64_t j = (b * p.N + n) * p.L + t;
          h[n] = std::exp(dt * p.A[d * p.N + n]) * h[n] + dt * p.Bm[j] * u;
          out += p.Cm[j] * h[n];
        }
        y[i] = (out + p.D_skip[d] * u) * silu(p.z[i]);
      }
    }
  return y;
}

static Problem random_problem(int64_t B, int64_t D, int64_t N, int64_t L, Generator& gen) {
  auto r = [&](int64_t n, double lo, double hi) {
    std::vector<double> v(n);
    for (double& x : v) x = lo + (hi - lo) * gen.next_double();
    return v;
  };
  return {B, D, N, L, r(B * D * L, -1, 1), r(B * D * L, -3, 0), r(D * N, -8, -0.5), r(B * N * L, -1, 1),
          r(B * N * L, -1, 1), r(D, -1, 1), r(B * D * L, -2, 2)};
}

// The problem as tensors of one dtype, and a call of the reference (which = 0) or the fused kernel.
struct ScanCall {
  Tensor u, delta, A, Bm, Cm;
  SelectiveScanArgs args;
  SelectiveScanResult run(bool fused) const {
    return fused ? selective_scan(u, delta, A, Bm, Cm, args) : selective_scan_reference(u, delta, A, Bm, Cm, args);
  }
};

static ScanCall as_tensors(const Problem& p, DType dtype) {
  auto t = [&](const std::vector<double>& v, const Shape& s) { return from_vector<double>(v, s).to(dtype); };
  ScanCall c{t(p.u, {p.B, p.D, p.L}), t(p.delta, {p.B, p.D, p.L}), t(p.A, {p.D, p.N}), t(p.Bm, {p.B, p.N, p.L}),
             t(p.Cm, {p.B, p.N, p.L}), {}};
  c.args.D_skip = t(p.D_skip, {p.D});
  c.args.z = t(p.z, {p.B, p.D, p.L});
  c.args.delta_softplus = true;
  return c;
}

static double max_diff(const std::vector<double>& a, const Tensor& b) {
  std::vector<double> v = b.to_vector<double>();
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - v[i]));
  return m;
}

static void reference_and_kernel() {
  std::printf("\n== 2. naive loop vs mg::selective_scan_reference vs the fused mg::selective_scan\n");
  Generator gen(4);
  Problem p = random_problem(2, 3, 5, 150, gen);  // L = 150 spans three 64-step chunks; N = 5 is padded
  std::vector<double> y = naive_scan(p);
  ScanCall c64 = as_tensors(p, DType::Float64), c32 = as_tensors(p, DType::Float32);
  double ref = max_diff(y, c64.run(false).y);
  double f64 = max_diff(y, c64.run(true).y);
  double f32 = max_diff(y, c32.run(true).y);
  std::printf("  max |y_naive - y|: reference %.1e, fused float64 %.1e, fused float32 %.1e\n", ref, f64, f32);
  check(ref < 1e-13, "the naive loop is the reference");
  check(f64 < 1e-10, "the fused kernel matches in float64");
  check(f32 < 1e-4, "the fused kernel matches in float32 (to float precision)");
}

// ---- 3. A measurement: state updates per second, naive loop vs fused kernel.
template <class Fn>
static double best_seconds(Fn&& fn, int repeats) {
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    auto start = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

static void measure() {
  const int64_t B = 2, D = 256, N = 16, L = 512;
  const double updates = double(B * D * N * L);
  std::printf("\n== 3. speed at B=%lld D=%lld N=%lld L=%lld (%.1fM state updates), threads: %d\n", (long long)B,
              (long long)D, (long long)N, (long long)L, updates / 1e6, get_num_threads());
  Generator gen(5);
  Problem p = random_problem(B, D, N, L, gen);
  ScanCall c64 = as_tensors(p, DType::Float64), c32 = as_tensors(p, DType::Float32);
  std::vector<double> y;
  double naive = best_seconds([&] { y = naive_scan(p); }, 5);
  double fused64 = best_seconds([&] { c64.run(true); }, 30);
  double fused32 = best_seconds([&] { c32.run(true); }, 30);
  std::printf("  naive loop (float64, 1 thread)  %8.2f ms  %6.3f G updates/s\n", naive * 1e3, updates / naive / 1e9);
  std::printf("  fused kernel, float64           %8.2f ms  %6.3f G updates/s\n", fused64 * 1e3, updates / fused64 / 1e9);
  std::printf("  fused kernel, float32           %8.2f ms  %6.3f G updates/s  (%.0fx the naive loop)\n",
              fused32 * 1e3, updates / fused32 / 1e9, naive / fused32);
  check(max_diff(y, c32.run(true).y) < 1e-3, "at this size too the fused kernel agrees");
}

int lesson() {
  selective_copying();
  reference_and_kernel();
  measure();
  std::printf("\n%s\n", failures ? "SOME CHECKS FAILED" : "all checks passed");
  return failures ? 1 : 0;
}

int main() { return mg::run_main(lesson); }  // an escaped error: one "error:" line, exit 1
