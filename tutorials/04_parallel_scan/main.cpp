// Lesson 04: the parallel scan. README.md walks through this file top to bottom.
// Every number the lesson quotes is printed here and checked: the program exits 1 if one is off.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <mambagrad.h>

#include "ops/cpu/parallel.h"
#include "ops/cpu/parallel_scan.h"
#include "ops/selective_scan.h"

using namespace mg;

static int failures = 0;
static void check(bool ok, const char* what) {
  if (!ok) std::printf("FAIL: %s\n", what), ++failures;
}

// One step h -> a h + b of the recurrence h_t = a_t h_{t-1} + b_t.
struct Affine {
  double a = 1, b = 0;  // the default is the identity map
};
// x then y: h -> y.a (x.a h + x.b) + y.b
static Affine compose(Affine x, Affine y) { return {x.a * y.a, y.a * x.b + y.b}; }
static double plus(double x, double y) { return x + y; }

static std::string show(double v) { return str(v); }
static std::string show(Affine p) { return str("(", p.a, ",", p.b, ")"); }
template <class T>
static void print_row(const char* label, const std::vector<T>& x) {
  std::string row;
  for (const T& v : x) row += str(row.empty() ? "" : " ", show(v));
  std::printf("  %-14s %s\n", label, row.c_str());
}

// Operations done, and in how many rounds; ops_per_round[r] of them in round r (independent).
struct Cost {
  int64_t ops = 0;
  std::vector<int64_t> ops_per_round;
  void round() { ops_per_round.push_back(0); }
  void op() { ++ops, ++ops_per_round.back(); }
  int64_t depth() const { return static_cast<int64_t>(ops_per_round.size()); }
};

// Blelloch's exclusive scan, in place, of a power-of-two number of elements: x[i] becomes
// x_0 o ... o x_{i-1}. Every iteration of an inner loop is independent of the others in its round.
template <class T, class Op>
static void blelloch(std::vector<T>& x, Op op, T identity, Cost& cost, bool print) {
  const int64_t M = static_cast<int64_t>(x.size());
  if (print) print_row("input", x);
  // Up-sweep: a binary tree of partial results; x[i] becomes the total of the 2s elements ending at i.
  for (int64_t s = 1; s < M; s *= 2) {
    cost.round();
    for (int64_t i = 2 * s - 1; i < M; i += 2 * s) x[i] = op(x[i - s], x[i]), cost.op();
    if (print) print_row(str("up, s=", s).c_str(), x);
  }
  // Down-sweep: push prefixes back down the tree. x[i] holds the prefix before its block; the left
  // half gets that prefix, the right half the prefix followed by the left half's total.
  x[M - 1] = identity;
  if (print) print_row("clear last", x);
  for (int64_t s = M / 2; s >= 1; s /= 2) {
    cost.round();
    for (int64_t i = 2 * s - 1; i < M; i += 2 * s) {
      T left = x[i - s];
      x[i - s] = x[i];
      x[i] = op(x[i], left), cost.op();
    }
    if (print) print_row(str("down, s=", s).c_str(), x);
  }
}

// Hillis and Steele's scan (inclusive): log2 M rounds, but each round touches almost every element.
template <class T, class Op>
static void hillis_steele(std::vector<T>& x, Op op, Cost& cost) {
  const int64_t M = static_cast<int64_t>(x.size());
  for (int64_t s = 1; s < M; s *= 2) {
    cost.round();
    std::vector<T> next = x;
    for (int64_t i = s; i < M; ++i) next[i] = op(x[i - s], x[i]), cost.op();
    x = next;
  }
}

static void tiny_examples() {
  std::printf("== 1. Blelloch's scan step by step, first with +\n");
  std::vector<double> x{3, 1, 7, 0, 4, 1, 6, 3};
  Cost cost;
  blelloch(x, plus, 0.0, cost, true);
  check(x == std::vector<double>{0, 3, 4, 11, 11, 15, 16, 22}, "the exclusive prefix sums of 3 1 7 0 4 1 6 3");

  std::printf("\n== 2. the same code with (a1, b1) o (a2, b2) = (a1 a2, a2 b1 + b2)\n");
  const std::vector<double> a{0.5, 2, 1, 0.5, 2, 0.5, 1, 2}, b{1, 1, 2, 0, 1, 3, 1, 0};
  std::vector<Affine> pairs;
  for (int t = 0; t < 8; ++t) pairs.push_back({a[t], b[t]});
  std::vector<Affine> scanned = pairs;
  blelloch(scanned, compose, Affine{}, cost, true);
  // Sequential: h_t = a_t h_{t-1} + b_t from h = 0. Exclusive scan element t+1 is h_t.
  std::vector<double> h(8), library_a = a, library_b = b;
  for (int t = 0; t < 8; ++t) h[t] = a[t] * (t > 0 ? h[t - 1] : 0.0) + b[t];
  cpu::linear_recurrence_scan(library_a.data(), library_b.data(), 8);  // the repository's version
  std::string seq, par, lib;
  bool same = true;
  for (int t = 0; t < 8; ++t) {
    Affine inclusive = t < 7 ? scanned[t + 1] : compose(scanned[7], pairs[7]);
    seq += str(" ", h[t]), par += str(" ", inclusive.b), lib += str(" ", library_b[t]);
    same = same && inclusive.b == h[t] && library_b[t] == h[t];
  }
  std::printf("  sequential h_t    %s\n  Blelloch (b part) %s\n  linear_recurrence %s\n", seq.c_str(), par.c_str(),
              lib.c_str());
  check(same, "sequential loop, lesson's Blelloch and cpu::linear_recurrence_scan agree exactly here");

  // The proof is in README.md; here a numerical spot check on random triples (and o is not commutative).
  Generator gen(6);
  double worst = 0, commute = 0;
  for (int i = 0; i < 1000; ++i) {
    Affine p{gen.next_normal(), gen.next_normal()}, q{gen.next_normal(), gen.next_normal()},
        r{gen.next_normal(), gen.next_normal()};
    Affine left = compose(compose(p, q), r), right = compose(p, compose(q, r));
    worst = std::max({worst, std::abs(left.a - right.a), std::abs(left.b - right.b)});
    commute = std::max(commute, std::abs(compose(p, q).b - compose(q, p).b));
  }
  std::printf("  1000 random triples: max |(x o y) o z - x o (y o z)| = %.1e;  max |x o y - y o x| = %.2f\n", worst,
              commute);
  check(worst < 1e-12, "o is associative");
  check(commute > 0.1, "o is not commutative: order matters");
}

static void against_the_scan() {
  std::printf("\n== 3. mg::selective_scan_parallel vs mg::selective_scan on random inputs (float64)\n");
  Generator gen(7);
  const int64_t B = 2, D = 4, G = 2, N = 6, L = 300;
  auto r = [&](const Shape& s, double lo, double hi) { return uniform(s, lo, hi, gen, {.dtype = DType::Float64}); };
  Tensor u = r({B, D, L}, -1, 1), delta = r({B, D, L}, -3, 1), A = r({D, N}, -4, -0.1);
  Tensor Bm = r({B, G, N, L}, -1, 1), Cm = r({B, G, N, L}, -1, 1);
  SelectiveScanArgs args;
  args.D_skip = r({D}, -1, 1), args.z = r({B, D, L}, -1, 1), args.delta_bias = r({D}, -1, 1);
  args.h0 = r({B, D, N}, -1, 1), args.delta_softplus = true;
  for (bool exact : {false, true}) {
    args.exact_zoh_b = exact;
    SelectiveScanResult seq = selective_scan(u, delta, A, Bm, Cm, args);
    SelectiveScanResult par = selective_scan_parallel(u, delta, A, Bm, Cm, args);
    double dy = max(abs(seq.y - par.y)).item<double>(), dh = max(abs(seq.last_state - par.last_state)).item<double>();
    std::printf("  exact_zoh_b=%d: max |y_seq - y_par| = %.1e, max |h_seq - h_par| = %.1e\n", exact, dy, dh);
    check(dy < 1e-12 && dh < 1e-12, "the parallel scan computes the same y and final state");
  }
}

static void cost_table() {
  std::printf("\n== 4. cost: operations (work) and rounds (depth)\n");
  std::printf("  L        sequential      Hillis-Steele       Blelloch        steps on 1024 lanes\n");
  std::printf("           work   depth    work      depth     work    depth   sequential  Blelloch\n");
  for (int64_t L : {8, 64, 1024, 65536}) {
    std::vector<Affine> x(L, Affine{0.9, 1.0});
    Cost hs, bl;
    hillis_steele(x, compose, hs);
    x.assign(L, Affine{0.9, 1.0});
    blelloch(x, compose, Affine{}, bl, false);
    // With p lanes a round of k independent operations takes ceil(k / p) steps (Brent).
    int64_t steps = 0;
    for (int64_t k : bl.ops_per_round) steps += (k + 1023) / 1024;
    const int64_t log2L = static_cast<int64_t>(std::log2(double(L)));
    std::printf("  %-7lld  %-6lld %-7lld  %-9lld %-8lld  %-7lld %-6lld  %-10lld  %lld\n", (long long)L,
                (long long)(L - 1), (long long)(L - 1), (long long)hs.ops, (long long)hs.depth(), (long long)bl.ops,
                (long long)bl.depth(), (long long)(L - 1), (long long)steps);
    check(bl.ops == 2 * (L - 1) && bl.depth() == 2 * log2L, "Blelloch: work 2(L-1), depth 2 log2 L");
    check(hs.ops == L * log2L - (L - 1) && hs.depth() == log2L, "Hillis-Steele: work L log2 L - (L-1)");
  }
}

static void cpu_timing() {
  const int64_t B = 2, D = 64, N = 16, L = 1024;
  std::printf("\n== 5. on this CPU (B=%lld D=%lld N=%lld L=%lld, float64, threads: %d)\n", (long long)B, (long long)D,
              (long long)N, (long long)L, get_num_threads());
  Generator gen(8);
  auto r = [&](const Shape& s, double lo, double hi) { return uniform(s, lo, hi, gen, {.dtype = DType::Float64}); };
  Tensor u = r({B, D, L}, -1, 1), delta = r({B, D, L}, -4, 0), A = r({D, N}, -4, -0.1);
  Tensor Bm = r({B, N, L}, -1, 1), Cm = r({B, N, L}, -1, 1);
  auto time = [&](auto fn) {
    double best = 1e30;
    for (int i = 0; i < 10; ++i) {
      auto start = std::chrono::steady_clock::now();
      fn(u, delta, A, Bm, Cm, SelectiveScanArgs{});
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    return best * 1e3;
  };
  std::printf("  sequential fused kernel  %7.2f ms\n", time(selective_scan));
  std::printf("  reference loop           %7.2f ms\n", time(selective_scan_reference));
  std::printf("  Blelloch parallel scan   %7.2f ms\n", time(selective_scan_parallel));
}

int lesson() {
  tiny_examples();
  against_the_scan();
  cost_table();
  cpu_timing();
  std::printf("\n%s\n", failures ? "SOME CHECKS FAILED" : "all checks passed");
  return failures ? 1 : 0;
}

int main() { return mg::run_main(lesson); }  // an escaped error: one "error:" line, exit 1
