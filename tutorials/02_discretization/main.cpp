// Lesson 02: from the continuous state space model to the discrete one. README.md walks through it.
// Every number the lesson quotes is printed here and checked: the program exits 1 if one is off.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <mambagrad.h>

#include "ops/discretize.h"
#include "ops/selective_scan.h"

using namespace mg;

static int failures = 0;
static void check(bool ok, const char* what) {
  if (!ok) std::printf("FAIL: %s\n", what), ++failures;
}

// The truth: integrate x' = A x + B u over [0, delta] with u held constant, by RK4 steps of at
// most 0.001 (RK4's error shrinks like step^4: far below what we compare).
static double ode_step(double x, double A, double B, double u, double delta) {
  const int steps = std::max(100, static_cast<int>(std::ceil(delta * 1000)));
  const double h = delta / steps;
  auto f = [&](double x) { return A * x + B * u; };
  for (int i = 0; i < steps; ++i) {
    double k1 = f(x), k2 = f(x + h / 2 * k1), k3 = f(x + h / 2 * k2), k4 = f(x + h * k3);
    x += h / 6 * (k1 + 2 * k2 + 2 * k3 + k4);
  }
  return x;
}

static Tensor f64(const std::vector<double>& v, const Shape& shape) { return from_vector<double>(v, shape); }

// ---- 1. One step: A_bar and B_bar of both holds, from the library's op, for A = -1, B = 1.
static void one_step() {
  std::printf("== 1. one step of x' = -x + u, from x = 2 with u = 1 held: the holds and the ODE\n");
  const std::vector<double> deltas{0.001, 0.01, 0.1, 0.5, 1, 2, 5, 10};
  const double A = -1, B = 1;
  Tensor delta = f64(deltas, {8}), At = f64({A}, {1}), Bt = f64({B}, {1});
  std::vector<double> A_bar = discretize_zoh(delta, At, Bt).A_bar.to_vector<double>();
  std::vector<double> B_zoh = discretize_zoh(delta, At, Bt).B_bar.to_vector<double>();
  std::vector<double> B_simple = discretize_simplified(delta, At, Bt).B_bar.to_vector<double>();
  std::printf("  delta   A_bar=e^{dA} B_bar ZOH   B_bar=dB dB/ZOH-1 | x(delta): ODE    ZOH      dB hold  Euler\n");
  for (size_t i = 0; i < deltas.size(); ++i) {
    double d = deltas[i];
    const double x0 = 2, u = 1;
    double ode = ode_step(x0, A, B, u, d);
    double zoh = A_bar[i] * x0 + B_zoh[i] * u;        // x_1 = A_bar x_0 + B_bar u
    double simple = A_bar[i] * x0 + B_simple[i] * u;  // the same with B_bar = delta B
    double euler = (1 + d * A) * x0 + d * B * u;      // one explicit Euler step
    std::printf("  %-6g  %-11.6g  %-10.6g  %-7g  %-+8.3g | %-8.6g %-8.6g %-8.6g %.6g\n", d, A_bar[i], B_zoh[i],
                B_simple[i], B_simple[i] / B_zoh[i] - 1, ode, zoh, simple, euler);
    check(std::abs(B_zoh[i] - std::expm1(d * A) / A * B) < 1e-14, "ZOH's B_bar = (e^{dA} - 1) / A B");
    check(std::abs(zoh - ode) < 1e-12, "the zero-order hold is the ODE's exact solution");
  }
  // Simplified / exact = dA / (e^{dA} - 1) = 1 - dA/2 + ...: first order in dA.
  double small = B_simple[0] / B_zoh[0] - 1;
  check(std::abs(small - 0.0005) < 0.01 * 0.0005, "for small delta A the holds differ by |delta A| / 2");
  check(B_simple[7] / B_zoh[7] > 9.9, "at delta A = -10 the simplified B_bar is 10x the exact one");
  check(1 + deltas[7] * A < -1, "Euler's A_bar = 1 + delta A leaves (-1, 1): unstable; exp never does");
}

// ---- 2. A whole sequence: the selective scan's two holds against the ODE.
static void sequences() {
  std::printf("\n== 2. 32 steps of x' = -x + u, u piecewise constant: max |x_t - ODE|\n");
  const int L = 32;
  Generator gen(2);
  std::vector<double> u = rand({L}, gen, {.dtype = DType::Float64}).to_vector<double>();
  for (double& v : u) v = 2 * v - 1;
  const double A = -1, B = 1;
  std::printf("  delta    ZOH (scan, exact_zoh_b)  dB (scan, default)  Euler\n");
  double previous_simple = 0;
  for (double d : {0.01, 0.1, 1.0, 3.0}) {
    // One channel and one state: u, delta (1, 1, L), A (1, 1), Bm = Cm = 1 so that y_t = x_t.
    Tensor ut = f64(u, {1, 1, L}), dt = full({1, 1, L}, d, {.dtype = DType::Float64});
    Tensor At = full({1, 1}, A, {.dtype = DType::Float64}), ones = ones_like(ut);
    SelectiveScanArgs exact;
    exact.exact_zoh_b = true;
    std::vector<double> y_zoh = selective_scan(ut, dt, At, ones, ones, exact).y.to_vector<double>();
    std::vector<double> y_simple = selective_scan(ut, dt, At, ones, ones).y.to_vector<double>();
    double x_ode = 0, x_euler = 0, err_zoh = 0, err_simple = 0, err_euler = 0;
    for (int t = 0; t < L; ++t) {
      x_ode = ode_step(x_ode, A, B, u[t], d);
      x_euler = (1 + d * A) * x_euler + d * B * u[t];
      err_zoh = std::max(err_zoh, std::abs(y_zoh[t] - x_ode));
      err_simple = std::max(err_simple, std::abs(y_simple[t] - x_ode));
      err_euler = std::max(err_euler, std::abs(x_euler - x_ode));
    }
    std::printf("  %-7g  %-23.2e  %-18.2e  %.2e\n", d, err_zoh, err_simple, err_euler);
    check(err_zoh < 1e-12, "the scan with exact_zoh_b follows the ODE exactly");
    check(err_simple > previous_simple, "the simplified hold's error grows with delta");
    previous_simple = err_simple;
  }
}

// ---- 3. What delta does: e^{delta A} is the fraction of the state kept by one step.
struct Curve {
  std::string label, color;
  std::vector<std::pair<double, double>> points;  // (log10 delta, value)
};

// A small line plot with a log10 x axis, written by hand: no plotting library needed.
static void write_svg(const std::string& path, const std::vector<Curve>& curves) {
  const double W = 640, H = 380, left = 60, right = 130, top = 40, bottom = 50;
  auto px = [&](double lx) { return left + (lx + 3) / 4 * (W - left - right); };  // log10 delta in [-3, 1]
  auto py = [&](double v) { return top + (1 - v) * (H - top - bottom); };         // value in [0, 1]
  std::string s = str("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"", W, "\" height=\"", H,
                      "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
  s += str("<text x=\"", W / 2 - 40, "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">A_bar = exp(delta A): ",
           "the fraction of the state one step keeps</text>\n");
  // Mamba initialises delta in [0.001, 0.1] (models/mamba): shade that band.
  s += str("<rect x=\"", px(-3), "\" y=\"", top, "\" width=\"", px(-1) - px(-3), "\" height=\"", H - top - bottom,
           "\" fill=\"#f2f2f2\"/>\n<text x=\"", px(-2), "\" y=\"", H - bottom - 8,
           "\" text-anchor=\"middle\" fill=\"#777\">Mamba's initial delta range</text>\n");
  for (int e = -3; e <= 1; ++e)
    s += str("<line x1=\"", px(e), "\" x2=\"", px(e), "\" y1=\"", top, "\" y2=\"", H - bottom, "\" stroke=\"#ddd\"/>",
             "<text x=\"", px(e), "\" y=\"", H - bottom + 16, "\" text-anchor=\"middle\">1e", e, "</text>\n");
  for (double v : {0.0, 0.25, 0.5, 0.75, 1.0})
    s += str("<line x1=\"", left, "\" x2=\"", W - right, "\" y1=\"", py(v), "\" y2=\"", py(v), "\" stroke=\"#ddd\"/>",
             "<text x=\"", left - 6, "\" y=\"", py(v) + 4, "\" text-anchor=\"end\">", v, "</text>\n");
  s += str("<text x=\"", (left + W - right) / 2, "\" y=\"", H - 12, "\" text-anchor=\"middle\">delta (log scale)</text>\n");
  s += str("<text x=\"", px(-2.95), "\" y=\"", py(0.6), "\">small delta:</text><text x=\"", px(-2.95), "\" y=\"",
           py(0.6) + 16, "\">keep the state</text>\n<text x=\"", px(1) - 4,
           "\" y=\"", py(0.6), "\" text-anchor=\"end\">large delta: forget it,</text><text x=\"", px(1) - 4, "\" y=\"",
           py(0.6) + 16, "\" text-anchor=\"end\">take the input</text>\n");
  for (size_t i = 0; i < curves.size(); ++i) {
    std::string d;
    for (auto [x, y] : curves[i].points) d += str(d.empty() ? "M" : " L", px(x), ",", py(y));
    double ly = top + 14 + 20 * i;
    s += str("<path d=\"", d, "\" fill=\"none\" stroke=\"", curves[i].color, "\" stroke-width=\"2\"/>\n",
             "<line x1=\"", W - right + 10, "\" x2=\"", W - right + 34, "\" y1=\"", ly, "\" y2=\"", ly,
             "\" stroke=\"", curves[i].color, "\" stroke-width=\"2\"/><text x=\"", W - right + 40, "\" y=\"", ly + 4,
             "\">", curves[i].label, "</text>\n");
  }
  std::ofstream(path) << s << "</svg>\n";
}

static void step_size() {
  std::printf("\n== 3. what delta does: one step from h = 1 with input u = 1 (A = -1, B = 1, exact hold)\n");
  std::printf("  delta   kept e^{dA}   input weight (1 - e^{dA})\n");
  for (double d : {0.001, 0.1, 1.0, 10.0}) {
    DiscretizedSSM s = discretize_zoh(full({1}, d, {.dtype = DType::Float64}), full({1}, -1.0, {.dtype = DType::Float64}),
                                      full({1}, 1.0, {.dtype = DType::Float64}));
    double kept = s.A_bar.item<double>(), weight = s.B_bar.item<double>();
    std::printf("  %-6g  %-12.5g  %.5g\n", d, kept, weight);
    check(std::abs(kept + weight - 1) < 1e-12, "with A = -1, B = 1 the new state is a convex mix of old state and input");
  }
  // The plot: A_bar against delta for Mamba's initial A_n = -(n + 1), n = 0, 1, 3, 7, 15.
  const std::vector<std::string> colors{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"};
  std::vector<Curve> curves;
  std::vector<double> log_deltas;
  for (int i = 0; i <= 80; ++i) log_deltas.push_back(-3 + 4.0 * i / 80);
  std::vector<double> deltas;
  for (double lx : log_deltas) deltas.push_back(std::pow(10.0, lx));
  std::vector<double> As{-1, -2, -4, -8, -16};
  // One call for the whole grid: delta (81, 1) broadcasts against A (5) to A_bar (81, 5).
  Tensor A_bar = discretize_zoh(f64(deltas, {81, 1}), f64(As, {5}), f64({1.0}, {1})).A_bar;
  std::vector<double> values = A_bar.to_vector<double>();
  for (size_t a = 0; a < As.size(); ++a) {
    Curve c{str("A = ", As[a]), colors[a], {}};
    for (size_t i = 0; i < deltas.size(); ++i) c.points.push_back({log_deltas[i], values[i * As.size() + a]});
    curves.push_back(c);
  }
  check(A_bar.shape() == Shape{81, 5}, "delta (81, 1) and A (5) broadcast to (81, 5)");
  // Small delta keeps the state for every A; large delta forgets it for every A.
  for (size_t a = 0; a < As.size(); ++a) {
    check(values[a] > 0.98, "at delta = 0.001 every state keeps > 98% per step");
    check(values[80 * As.size() + a] < 1e-4, "at delta = 10 every state keeps < 0.01% per step");
  }
  write_svg("exp_delta_a.svg", curves);
  std::printf("  wrote exp_delta_a.svg (%zu curves, %zu points each)\n", curves.size(), deltas.size());
}

int lesson() {
  one_step();
  sequences();
  step_size();
  std::printf("\n%s\n", failures ? "SOME CHECKS FAILED" : "all checks passed");
  return failures ? 1 : 0;
}

int main() { return mg::run_main(lesson); }  // an escaped error: one "error:" line, exit 1
