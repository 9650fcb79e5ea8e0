// discretize_zoh / discretize_simplified: closed forms, an independent matrix-exponential check of
// Eq. 4, the A -> 0 limit, gradcheck (also at and near A = 0), and errors.
#include <array>
#include <cmath>

#include "ops/cpu/discretize.h"
#include "ops/discretize.h"
#include "test_util.h"

namespace mg {
namespace {

// The scan's layout, one broadcast away (see ops/discretize.h):
//   delta (Bt, D, L, 1), A (D, 1, N), B (Bt, 1, L, N) -> A_bar, B_bar (Bt, D, L, N)
constexpr int64_t kBt = 2, kD = 3, kL = 5, kN = 4;

struct ScanLayoutInputs {
  Tensor delta, A, B;
};

ScanLayoutInputs scan_layout_inputs(uint64_t seed, bool requires_grad = false) {
  return {test::random({kBt, kD, kL, 1}, seed, DType::Float64, requires_grad, 0.05, 1.5),
          test::random({kD, 1, kN}, seed + 1, DType::Float64, requires_grad, -2.0, 1.0),
          test::random({kBt, 1, kL, kN}, seed + 2, DType::Float64, requires_grad, -1.0, 1.0)};
}

TEST(Discretize, MatchesClosedFormsInScanLayout) {
  ScanLayoutInputs in = scan_layout_inputs(10);
  DiscretizedSSM zoh = discretize_zoh(in.delta, in.A, in.B);
  DiscretizedSSM simple = discretize_simplified(in.delta, in.A, in.B);
  Shape expected{kBt, kD, kL, kN};
  ASSERT_EQ(zoh.A_bar.shape(), expected);
  ASSERT_EQ(zoh.B_bar.shape(), expected);
  ASSERT_EQ(simple.B_bar.shape(), expected);
  auto dt = in.delta.to_vector<double>(), a = in.A.to_vector<double>(), b = in.B.to_vector<double>();
  auto za = zoh.A_bar.to_vector<double>(), zb = zoh.B_bar.to_vector<double>();
  auto sa = simple.A_bar.to_vector<double>(), sb = simple.B_bar.to_vector<double>();
  for (int64_t i = 0; i < kBt; ++i)
    for (int64_t d = 0; d < kD; ++d)
      for (int64_t t = 0; t < kL; ++t)
        for (int64_t n = 0; n < kN; ++n) {
          double delta = dt[(i * kD + d) * kL + t], A = a[d * kN + n], B = b[(i * kL + t) * kN + n];
          if (std::abs(A) < 1e-3) continue;  // the closed form below divides by A
          int64_t k = ((i * kD + d) * kL + t) * kN + n;
          double A_bar = std::exp(delta * A), B_bar_zoh = (std::exp(delta * A) - 1.0) / A * B;
          EXPECT_NEAR(za[k], A_bar, 1e-14 * A_bar);
          EXPECT_NEAR(sa[k], A_bar, 1e-14 * A_bar);
          EXPECT_NEAR(zb[k], B_bar_zoh, 1e-12 * std::abs(B_bar_zoh) + 1e-15);
          EXPECT_NEAR(sb[k], delta * B, 1e-15);
        }
}

// exp of a 2x2 matrix (row-major) by scaling and squaring a Taylor series: an independent, slow
// and simple float64 reference.
using Mat2 = std::array<double, 4>;

Mat2 matmul2(const Mat2& x, const Mat2& y) {
  return {x[0] * y[0] + x[1] * y[2], x[0] * y[1] + x[1] * y[3], x[2] * y[0] + x[3] * y[2], x[2] * y[1] + x[3] * y[3]};
}

Mat2 expm2(Mat2 m) {
  double norm = std::max(std::abs(m[0]) + std::abs(m[1]), std::abs(m[2]) + std::abs(m[3]));
  int squarings = 0;
  for (; norm > 0.25; norm /= 2) ++squarings;
  for (double& v : m) v = std::ldexp(v, -squarings);
  Mat2 result{1, 0, 0, 1}, term{1, 0, 0, 1};
  for (int k = 1; k <= 24; ++k) {
    term = matmul2(term, m);
    for (double& v : term) v /= k;
    for (int j = 0; j < 4; ++j) result[j] += term[j];
  }
  for (int s = 0; s < squarings; ++s) result = matmul2(result, result);
  return result;
}

// The ODE (h, u)' = [[A, B], [0, 0]] (h, u) holds u constant: exactly the zero-order hold. Its
// flow over delta is expm(delta M) = [[A_bar, B_bar], [0, 1]], whatever A is (0 included).
TEST(Discretize, ZeroOrderHoldMatchesMatrixExponential) {
  Generator gen(3);
  std::vector<double> du = uniform({40}, 0.001, 3.0, gen, {.dtype = DType::Float64}).to_vector<double>();
  std::vector<double> au = uniform({40}, -5.0, 2.0, gen, {.dtype = DType::Float64}).to_vector<double>();
  std::vector<double> bu = uniform({40}, -2.0, 2.0, gen, {.dtype = DType::Float64}).to_vector<double>();
  au[0] = 0.0, au[1] = 1e-12, au[2] = -1e-9, au[3] = 0.5 / du[3], au[4] = -0.5 / du[4];  // 0 and the series cutoff
  Tensor delta = from_vector(du, {40}), A = from_vector(au, {40}), B = from_vector(bu, {40});
  DiscretizedSSM out = discretize_zoh(delta, A, B);
  std::vector<double> A_bar = out.A_bar.to_vector<double>(), B_bar = out.B_bar.to_vector<double>();
  for (int i = 0; i < 40; ++i) {
    Mat2 flow = expm2({du[i] * au[i], du[i] * bu[i], 0.0, 0.0});
    EXPECT_NEAR(A_bar[i], flow[0], 1e-12 * std::abs(flow[0])) << "delta " << du[i] << " A " << au[i];
    EXPECT_NEAR(B_bar[i], flow[1], 1e-12 * std::abs(flow[1]) + 1e-15) << "delta " << du[i] << " A " << au[i];
  }
}

TEST(Discretize, ExprelAndDerivativeAgainstLongDouble) {
  for (double x : {-30.0, -3.0, -0.7, -0.5000001, -0.4999999, -0.2, -0.01, 0.01, 0.3, 0.4999999, 0.5000001, 2.0}) {
    long double X = x;
    long double f = std::expm1(X) / X, df = (X * std::exp(X) - std::expm1(X)) / (X * X);
    EXPECT_NEAR(cpu::exprel(x), static_cast<double>(f), 5e-16 * std::abs(static_cast<double>(f))) << x;
    EXPECT_NEAR(cpu::exprel_derivative(x), static_cast<double>(df), 4e-15 * std::abs(static_cast<double>(df))) << x;
  }
  for (double x : {0.0, 1e-300, -1e-12, 1e-9}) {  // the series' first terms are exact here
    EXPECT_NEAR(cpu::exprel(x), 1.0 + x / 2, 1e-16) << x;
    EXPECT_NEAR(cpu::exprel_derivative(x), 0.5 + x / 3, 1e-16) << x;
  }
  EXPECT_NEAR(cpu::exprel(0.25f), static_cast<float>(std::expm1(0.25) / 0.25), 2e-7f);
}

// A = 0 is the limit B_bar -> delta B (no 0/0), and values and gradients are continuous there.
TEST(Discretize, LimitAtZeroIsFiniteAndContinuous) {
  const double delta = 0.7, B = 1.3;
  std::vector<double> As{0.0, 1e-12, -1e-9};
  Tensor d = full({3}, delta, {.dtype = DType::Float64, .requires_grad = true});
  Tensor A = from_vector(As, {3}).requires_grad_(true);
  Tensor b = full({3}, B, {.dtype = DType::Float64, .requires_grad = true});
  DiscretizedSSM out = discretize_zoh(d, A, b);
  out.B_bar.backward(ones({3}, {.dtype = DType::Float64}));
  std::vector<double> B_bar = out.B_bar.to_vector<double>(), dA = A.grad().to_vector<double>();
  std::vector<double> ddelta = d.grad().to_vector<double>(), dB = b.grad().to_vector<double>();
  for (int i = 0; i < 3; ++i) {
    double x = delta * As[i];
    ASSERT_TRUE(std::isfinite(B_bar[i]) && std::isfinite(dA[i]) && std::isfinite(ddelta[i])) << As[i];
    EXPECT_NEAR(B_bar[i], delta * B * (1 + x / 2), 1e-15) << As[i];                // -> delta B
    EXPECT_NEAR(dA[i], B * delta * delta * (0.5 + x / 3), 1e-15) << As[i];        // -> delta^2 B / 2
    EXPECT_NEAR(ddelta[i], B * std::exp(x), 1e-15) << As[i];                       // -> B
    EXPECT_NEAR(dB[i], delta * (1 + x / 2), 1e-15) << As[i];                       // -> delta
  }
  EXPECT_DOUBLE_EQ(B_bar[0], delta * B);
  EXPECT_DOUBLE_EQ(dA[0], B * delta * delta / 2);
}

TEST(Discretize, GradcheckScanLayout) {
  ScanLayoutInputs in = scan_layout_inputs(20, /*requires_grad=*/true);
  TensorList inputs{in.delta, in.A, in.B};
  for (bool exact : {true, false}) {
    auto f = exact ? discretize_zoh : discretize_simplified;
    EXPECT_TRUE(test::passes_gradcheck([&](const TensorList& x) { return f(x[0], x[1], x[2]).A_bar; }, inputs));
    EXPECT_TRUE(test::passes_gradcheck([&](const TensorList& x) { return f(x[0], x[1], x[2]).B_bar; }, inputs));
  }
}

// A_bar smaller than B_bar, both outputs used at once, non-contiguous inputs.
TEST(Discretize, GradcheckBothOutputsBroadcastNonContiguous) {
  Tensor delta = test::random({3, 1}, 30, DType::Float64, true, 0.1, 1.0);
  Tensor A = test::random({3, 1}, 31, DType::Float64, true, -1.5, 0.5);
  Tensor B = test::random({4}, 32, DType::Float64, true);
  auto both = [](const TensorList& x) {
    DiscretizedSSM out = discretize_zoh(x[0], x[1], x[2]);  // A_bar (3, 1), B_bar (3, 4)
    return out.A_bar + out.B_bar;
  };
  EXPECT_TRUE(test::passes_gradcheck(both, {delta, A, B}));
  Tensor delta_t = test::random({4, 3}, 33, DType::Float64, false, 0.1, 1.0).transpose(0, 1).detach();
  Tensor A_t = test::random({4, 3}, 34, DType::Float64, false, -1.5, 0.5).transpose(0, 1).detach();
  delta_t.requires_grad_(true);
  A_t.requires_grad_(true);
  ASSERT_FALSE(delta_t.is_contiguous());
  EXPECT_TRUE(test::passes_gradcheck(both, {delta_t, A_t, B}));
  auto simple = [](const TensorList& x) {
    DiscretizedSSM out = discretize_simplified(x[0], x[1], x[2]);
    return out.A_bar + out.B_bar;
  };
  EXPECT_TRUE(test::passes_gradcheck(simple, {delta_t, A_t, B}));
}

TEST(Discretize, GradcheckAtAndNearZero) {
  // A at 0, tiny, and on both sides of the series cutoff |delta A| = 0.5 (delta = 1 here).
  Tensor A = from_vector(std::vector<double>{0.0, 1e-12, -1e-9, 1e-6, -0.4999, -0.5001, 0.5001, -3.0}, {8});
  A.requires_grad_(true);
  Tensor delta = full({8}, 1.0, {.dtype = DType::Float64, .requires_grad = true});
  Tensor B = test::random({8}, 40, DType::Float64, true);
  auto f = [](const TensorList& x) { return discretize_zoh(x[0], x[1], x[2]).B_bar; };
  EXPECT_TRUE(test::passes_gradcheck(f, {delta, A, B}, {.atol = 1e-7, .rtol = 1e-6}));
}

TEST(Discretize, Float32MatchesFloat64) {
  ScanLayoutInputs in = scan_layout_inputs(50);
  DiscretizedSSM ref = discretize_zoh(in.delta, in.A, in.B);
  Tensor delta = in.delta.to(DType::Float32).detach().requires_grad_(true);
  Tensor A = in.A.to(DType::Float32).detach().requires_grad_(true);
  Tensor B = in.B.to(DType::Float32).detach();
  DiscretizedSSM out = discretize_zoh(delta, A, B);
  EXPECT_EQ(out.B_bar.dtype(), DType::Float32);
  EXPECT_TRUE(test::all_close(out.A_bar, ref.A_bar, 1e-6, 1e-6));
  EXPECT_TRUE(test::all_close(out.B_bar, ref.B_bar, 1e-6, 1e-6));
  out.B_bar.backward(ones_like(out.B_bar));
  EXPECT_EQ(A.grad().shape(), (Shape{kD, 1, kN}));
  EXPECT_FALSE(B.requires_grad());
}

TEST(Discretize, ErrorsNameOpAndShapes) {
  Tensor d = ones({2, 3}), A = ones({4}), B = ones({3});
  EXPECT_TRUE(test::throws_error([&] { discretize_zoh(d, A, B); }, "discretize_zoh", "delta [2, 3], A [4], B [3]"));
  EXPECT_TRUE(test::throws_error([&] { discretize_simplified(d, ones({3}), ones({5, 1, 2})); }, "discretize_simplified",
                                 "B [5, 1, 2]"));
  Tensor i = ones({3}, {.dtype = DType::Int64});
  EXPECT_TRUE(test::throws_error([&] { discretize_zoh(i, i, i); }, "discretize_zoh", "int64"));
  Tensor f64 = ones({3}, {.dtype = DType::Float64});
  EXPECT_TRUE(test::throws_error([&] { discretize_zoh(ones({3}), f64, ones({3})); }, "discretize_zoh", "float64"));
}

}  // namespace
}  // namespace mg
