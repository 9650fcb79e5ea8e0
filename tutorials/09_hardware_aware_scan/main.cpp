// Lesson 09: the hardware-aware scan. README.md walks through this file top to bottom.
// The CPU parts run everywhere and check every number they print (the program exits 1 if one is
// off); the GPU timing runs only where a GPU is present.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <mambagrad.h>

#include "apps/common/loss_plot.h"
#include "cuda/runtime.h"
#include "ops/selective_scan.h"

using namespace mg;

static int failures = 0;
static void check(bool ok, const char* what) {
  if (!ok) std::printf("FAIL: %s\n", what), ++failures;
}

// ---- 1. Bytes: what a scan must move, and what a naive GPU scan moves.
struct ScanShape {
  int64_t B, D, L, N;
};

// The floor: read u, delta, z (B, D, L) and B, C (B, N, L) once, write y (B, D, L) once (float32).
static double floor_bytes(const ScanShape& s) { return 4.0 * (4 * s.B * s.D * s.L + 2 * s.B * s.N * s.L); }

// A scan written as separate kernels over tensors in memory: dA = exp(delta A) and dBu = delta B u
// are (B, D, L, N) tensors (written once, read once), the states h are written by the scan and
// read back by the C h product: four passes over B D L N floats on top of the floor.
static double naive_bytes(const ScanShape& s) {
  return floor_bytes(s) + 4.0 * 4 * static_cast<double>(s.B * s.D * s.L * s.N);
}

// ---- 2. The scan operator (lesson 04): (a1, b1) o (a2, b2) = (a1 a2, a2 b1 + b2).
struct Affine {
  double a = 1, b = 0;
};
static Affine compose(Affine x, Affine y) { return {x.a * y.a, y.a * x.b + y.b}; }

int lesson() {
  std::printf("== 1. Bytes moved\n");
  const ScanShape shape{16, 1536, 2048, 16};  // the fused-scan issue's benchmark
  const double hbm = 4.26e12;                 // the H200's measured copy bandwidth, bytes/s
  const double fused = floor_bytes(shape), naive = naive_bytes(shape);
  std::printf("  B=16 D=1536 L=2048 N=16: floor %.0f MB (%.2f ms at 4.26 TB/s), naive %.0f MB (%.2f ms)\n",
              fused / 1e6, fused / hbm * 1e3, naive / 1e6, naive / hbm * 1e3);
  check(std::abs(fused / 1e6 - 809.5) < 1, "the floor is 809.5 MB");
  std::printf("  the naive scan moves %.1fx the floor\n", naive / fused);
  check(std::abs(naive / fused - 16.9) < 0.05, "the naive scan moves 16.9x the floor");

  std::printf("== 2. The operator is associative: chunks can be scanned independently\n");
  Generator gen(9);
  double worst = 0;
  for (int i = 0; i < 1000; ++i) {
    Affine x{gen.next_double(), gen.next_double() - 0.5}, y{gen.next_double(), gen.next_double() - 0.5},
        z{gen.next_double(), gen.next_double() - 0.5};
    Affine left = compose(compose(x, y), z), right = compose(x, compose(y, z));
    worst = std::max({worst, std::abs(left.a - right.a), std::abs(left.b - right.b)});
  }
  std::printf("  (x o y) o z vs x o (y o z) over 1000 random triples: worst difference %.1e\n", worst);
  check(worst < 1e-15, "associative to rounding");

  std::printf("== 3. A chunk carries its state: pieces through h0 equal one pass\n");
  const int64_t B = 2, D = 5, N = 16, L = 1000;
  auto r = [&](Shape s, double lo, double hi) { return uniform(s, lo, hi, gen, {.dtype = DType::Float64}); };
  Tensor u = r({B, D, L}, -1, 1), delta = r({B, D, L}, -3, 0), A = r({D, N}, -2, -0.2);
  Tensor Bm = r({B, N, L}, -1, 1), Cm = r({B, N, L}, -1, 1), z = r({B, D, L}, -2, 2);
  SelectiveScanArgs args{.z = z, .delta_softplus = true};
  SelectiveScanResult whole = selective_scan(u, delta, A, Bm, Cm, args);
  Tensor state = zeros({B, D, N}, {.dtype = DType::Float64});
  TensorList pieces;
  for (int64_t start = 0; start < L; start += 300) {
    const int64_t len = std::min<int64_t>(300, L - start);
    auto piece = [&](const Tensor& t) { return t.narrow(2, start, len); };
    SelectiveScanArgs a = args;
    a.z = piece(z);
    a.h0 = state;
    SelectiveScanResult part = selective_scan(piece(u), piece(delta), A, piece(Bm), piece(Cm), a);
    pieces.push_back(part.y);
    state = part.last_state;
  }
  const double diff = max(abs(concat(pieces, 2) - whole.y)).item<double>();
  std::printf("  1000 steps in pieces of 300 through h0 vs one pass: max |difference| %.1e\n", diff);
  check(diff < 1e-12, "pieces equal one pass");

  std::printf("== 3b. Splitting L: segments from zero, then a short carry (what the GPU does at batch 1)\n");
  // Each segment is scanned from a zero state: its last state e_s. Its decay P_s = exp(A sum delta')
  // (B, D, N) is the product of its steps' dA. Carrying H_{s+1} = P_s H_s + e_s over the segments
  // gives the state entering each one: only S small steps run in order.
  Tensor carried = zeros({B, D, N}, {.dtype = DType::Float64});
  double worst_carry = 0;
  state = zeros({B, D, N}, {.dtype = DType::Float64});
  for (int64_t start = 0; start < L; start += 300) {
    const int64_t len = std::min<int64_t>(300, L - start);
    auto piece = [&](const Tensor& t) { return t.narrow(2, start, len); };
    SelectiveScanArgs from_zero{.z = piece(z), .delta_softplus = true};
    const Tensor e = selective_scan(piece(u), piece(delta), A, piece(Bm), piece(Cm), from_zero).last_state;
    const Tensor P = exp(sum(softplus(piece(delta)), {2}).unsqueeze(2) * A);  // (B, D, 1) * (D, N)
    carried = P * carried + e;
    SelectiveScanArgs a = args;  // the sequential reference: the true state through h0
    a.z = piece(z);
    a.h0 = state;
    state = selective_scan(piece(u), piece(delta), A, piece(Bm), piece(Cm), a).last_state;
    worst_carry = std::max(worst_carry, max(abs(carried - state)).item<double>());
  }
  std::printf("  4 segments scanned from zero + the carry vs the sequential states: max |difference| %.1e\n",
              worst_carry);
  check(worst_carry < 1e-12, "the carried states equal the sequential ones");

  std::printf("== 4. Determinism: the same inputs, the same gradient bits\n");
  auto gradient_of_A = [&](Device device) {
    Tensor a = A.to(DType::Float32).to(device).detach().requires_grad_(true);
    SelectiveScanArgs g{.z = z.to(DType::Float32).to(device), .delta_softplus = true};
    SelectiveScanResult out = selective_scan(u.to(DType::Float32).to(device), delta.to(DType::Float32).to(device), a,
                                             Bm.to(DType::Float32).to(device), Cm.to(DType::Float32).to(device), g);
    sum(out.y).backward();
    return a.grad().to(Device::cpu()).to_vector<float>();
  };
  std::vector<Device> devices{Device::cpu()};
  if (cuda_is_available()) devices.push_back(Device::cuda(0));
  for (Device device : devices) {
    const bool same = gradient_of_A(device) == gradient_of_A(device);
    std::printf("  dA on %s, twice: %s\n", device.str().c_str(), same ? "identical bits" : "DIFFERENT");
    check(same, "identical gradients on reruns");
  }

  std::printf("== 5. The variants of cuda/dev/ (H200, forward + backward, ms; benchmarks/RESULTS.md)\n");
  // Measured: "2026-12-01: the selective scan on the GPU, variants 1-4" in benchmarks/RESULTS.md
  // (variants 5 and 6 in its table's later rows).
  const double lengths[] = {512, 2048, 8192};
  struct Variant {
    const char* name;
    const char* color;
    double ms[3];
  };
  const Variant variants[] = {{"official kernel", "#7f7f7f", {1.639, 5.846, 24.04}},
                              {"variant 1", "#1f77b4", {2.744, 10.746, 42.852}},
                              {"variant 2", "#d62728", {6.58, 26.4, 105.0}},
                              {"variant 3", "#ff7f0e", {1.898, 7.423, 29.51}},
                              {"variant 4", "#2ca02c", {1.830, 7.150, 28.37}},
                              {"variant 5", "#9467bd", {1.85, 7.27, 28.8}},
                              {"variant 6", "#17becf", {1.132, 4.340, 17.117}}};
  std::vector<apps::Series> series;
  for (const Variant& v : variants) {
    apps::Series s{v.name, v.color, {}, std::string(v.name) == "official kernel", true};
    for (int i = 0; i < 3; ++i) s.points.emplace_back(lengths[i], v.ms[i]);
    series.push_back(s);
    std::printf("  %-16s %7.3f %7.3f %8.3f\n", v.name, v.ms[0], v.ms[1], v.ms[2]);
  }
  std::ofstream("variants.svg") << apps::line_plot_svg(
      series, "Selective scan, forward + backward, H200 (B 16, D 1536, N 16)",
      {.x_label = "sequence length L", .y_label = "ms", .log_x = true, .log_y = true});
  std::printf("  wrote variants.svg\n");

  std::printf("== 6. This machine's GPU\n");
  if (!cuda_is_available()) {
    std::printf("  no GPU here: the timing is skipped (the README quotes the H200's)\n");
  } else {
    const Device gpu = Device::cuda(0);
    Generator g(1);
    auto t = [&](Shape s, double lo, double hi) { return uniform(s, lo, hi, g).to(gpu); };
    Tensor gu = t({16, 1536, 2048}, -1, 1), gd = t({16, 1536, 2048}, -3, 0), gA = t({1536, 16}, -2, -0.5);
    Tensor gB = t({16, 16, 2048}, -1, 1), gC = t({16, 16, 2048}, -1, 1), gz = t({16, 1536, 2048}, -1, 1);
    SelectiveScanArgs ga{.z = gz, .delta_softplus = true};
    NoGradGuard no_grad;
    for (int i = 0; i < 3; ++i) selective_scan(gu, gd, gA, gB, gC, ga);
    cuda::Event start, end;
    start.record();
    for (int i = 0; i < 10; ++i) selective_scan(gu, gd, gA, gB, gC, ga);
    end.record();
    const double ms = cuda::Event::elapsed_ms(start, end) / 10;
    std::printf("  forward at B=16 D=1536 L=2048 N=16: %.3f ms, %.0f GB/s, %.1fx the floor\n", ms,
                fused / ms / 1e6, ms / (fused / hbm * 1e3));
  }
  std::printf("%s\n", failures == 0 ? "all checks passed" : "SOME CHECKS FAILED");
  return failures == 0 ? 0 : 1;
}

int main() { return mg::run_main(lesson); }  // an escaped error: one "error:" line, exit 1
