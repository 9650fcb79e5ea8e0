// Elementwise unary ops: one table of cases, each run against a std:: reference (float64 and
// float32, awkward sizes, non-contiguous input), float64 gradcheck, and the dtype error.
#include <cmath>
#include <limits>

#include "test_util.h"

namespace mg {
namespace {

using UnaryFn = std::function<Tensor(const Tensor&)>;
struct UnaryCase {
  const char* name;
  UnaryFn fn;
  double (*reference)(double);
  double low = -2.0, high = 2.0;  // input range
  bool avoid_zero = false;        // keep |x| >= 0.1 (ops with a kink at 0)
  friend void PrintTo(const UnaryCase& c, std::ostream* os) { *os << c.name; }
};

double sigmoid_ref(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double softplus_ref(double x, double beta, double threshold) {
  return beta * x > threshold ? x : std::log1p(std::exp(beta * x)) / beta;
}

const UnaryCase kCases[] = {
    {"neg", [](const Tensor& x) { return neg(x); }, [](double x) { return -x; }},
    {"exp", [](const Tensor& x) { return exp(x); }, [](double x) { return std::exp(x); }, -10.0, 10.0},
    {"log", [](const Tensor& x) { return log(x); }, [](double x) { return std::log(x); }, 0.05, 5.0},
    {"sqrt", [](const Tensor& x) { return sqrt(x); }, [](double x) { return std::sqrt(x); }, 0.05, 5.0},
    {"rsqrt", [](const Tensor& x) { return rsqrt(x); }, [](double x) { return 1.0 / std::sqrt(x); }, 0.05, 5.0},
    {"pow", [](const Tensor& x) { return pow(x, 2.0); }, [](double x) { return x * x; }},
    {"pow", [](const Tensor& x) { return pow(x, 3.0); }, [](double x) { return x * x * x; }},
    {"pow", [](const Tensor& x) { return pow(x, 0.5); }, [](double x) { return std::sqrt(x); }, 0.05, 5.0},
    {"pow", [](const Tensor& x) { return pow(x, -1.5); }, [](double x) { return std::pow(x, -1.5); }, 0.2, 5.0},
    {"abs", [](const Tensor& x) { return abs(x); }, [](double x) { return std::fabs(x); }, -2.0, 2.0, true},
    {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, sigmoid_ref, -12.0, 12.0},
    {"tanh", [](const Tensor& x) { return tanh(x); }, [](double x) { return std::tanh(x); }, -4.0, 4.0},
    {"relu", [](const Tensor& x) { return relu(x); }, [](double x) { return x > 0 ? x : 0.0; }, -2.0, 2.0, true},
    {"gelu", [](const Tensor& x) { return gelu(x); },
     [](double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }, -4.0, 4.0},
    {"gelu_tanh", [](const Tensor& x) { return gelu_tanh(x); },
     [](double x) { return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x))); }, -6.0,
     6.0},
    {"silu", [](const Tensor& x) { return silu(x); }, [](double x) { return x * sigmoid_ref(x); }, -8.0, 8.0},
    {"softplus", [](const Tensor& x) { return softplus(x); }, [](double x) { return softplus_ref(x, 1, 20); }, -8.0, 8.0},
    {"softplus", [](const Tensor& x) { return softplus(x, 2.0, 5.0); },
     [](double x) { return softplus_ref(x, 2.0, 5.0); }, -4.0, 2.0},
};

// Random input in the case's range (away from 0 where asked), as `dtype`.
Tensor make_input(const UnaryCase& c, const Shape& shape, uint64_t seed, DType dtype = DType::Float64) {
  std::vector<double> v = test::random(shape, seed, DType::Float64, false, c.low, c.high).to_vector<double>();
  if (c.avoid_zero)
    for (double& x : v) x = x >= 0 ? x + 0.1 : x - 0.1;
  return from_vector(v, shape, {.dtype = dtype});
}

// out == reference(x) elementwise, with x and out read back in row-major order.
::testing::AssertionResult matches_reference(const UnaryCase& c, const Tensor& x, const Tensor& out, double atol,
                                             double rtol) {
  std::vector<double> xv = x.to_vector<double>();
  std::vector<double> expected(xv.size());
  for (size_t i = 0; i < xv.size(); ++i) expected[i] = c.reference(xv[i]);
  return test::all_close(out, from_vector(expected, x.shape(), {.dtype = DType::Float64}), atol, rtol);
}

class UnaryOps : public ::testing::TestWithParam<UnaryCase> {};

TEST_P(UnaryOps, MatchesReferenceOnAwkwardSizes) {
  const UnaryCase& c = GetParam();
  uint64_t seed = 10;
  for (const Shape& shape : {Shape{}, Shape{1}, Shape{7}, Shape{3, 17}, Shape{1031}, Shape{2, 0, 3}, Shape{5, 70001}}) {
    Tensor x = make_input(c, shape, ++seed);
    EXPECT_TRUE(matches_reference(c, x, c.fn(x), 1e-14, 1e-13)) << c.name << " float64 " << shape;
    Tensor xf = x.to(DType::Float32);
    Tensor out = c.fn(xf);
    EXPECT_EQ(out.dtype(), DType::Float32);
    EXPECT_TRUE(matches_reference(c, xf, out, 1e-6, 2e-6)) << c.name << " float32 " << shape;
  }
  Tensor xt = make_input(c, {40, 33}, 99).transpose(0, 1);  // non-contiguous
  EXPECT_TRUE(matches_reference(c, xt, c.fn(xt), 1e-14, 1e-13));
}

TEST_P(UnaryOps, GradcheckContiguousAndNonContiguous) {
  const UnaryCase& c = GetParam();
  auto f = [&](const TensorList& in) { return c.fn(in[0]); };
  Tensor x = make_input(c, {3, 5}, 1).requires_grad_(true);
  EXPECT_TRUE(test::passes_gradcheck(f, {x}));
  Tensor xt = make_input(c, {4, 3, 2}, 2).transpose(0, 2).detach().requires_grad_(true);
  EXPECT_TRUE(test::passes_gradcheck(f, {xt}));
}

TEST_P(UnaryOps, Float32GradientMatchesFloat64) {
  const UnaryCase& c = GetParam();
  Tensor x = make_input(c, {6, 9}, 3).requires_grad_(true);
  Tensor xf = x.detach().to(DType::Float32).requires_grad_(true);
  sum(c.fn(x)).backward();
  sum(c.fn(xf)).backward();
  ASSERT_EQ(xf.grad().dtype(), DType::Float32);
  EXPECT_TRUE(test::all_close(xf.grad(), x.grad(), 1e-5, 1e-5));
}

TEST_P(UnaryOps, RejectsInt64NamingTheOp) {
  const UnaryCase& c = GetParam();
  Tensor i = ones({2, 3}, {.dtype = DType::Int64});
  EXPECT_TRUE(test::throws_error([&] { c.fn(i); }, c.name, "int64"));
}

INSTANTIATE_TEST_SUITE_P(All, UnaryOps, ::testing::ValuesIn(kCases));

TEST(UnaryOps, SoftplusThresholdIsLinearAbove) {
  // beta * x > threshold: the output is x itself and the gradient exactly 1 (PyTorch's rule).
  Tensor x = tensor({20.5, 25.0, 100.0, 1000.0}).requires_grad_(true);
  Tensor y = softplus(x);
  EXPECT_EQ(y.to_vector<double>(), x.detach().to_vector<double>());
  sum(y).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), std::vector<double>(4, 1.0));
  // beta = 2, threshold = 10: x = 6 is linear (12 > 10), x = 4 is not (8 < 10).
  std::vector<double> v = softplus(tensor({6.0, 4.0}), 2.0, 10.0).to_vector<double>();
  EXPECT_EQ(v[0], 6.0);
  EXPECT_NEAR(v[1], std::log1p(std::exp(8.0)) / 2.0, 1e-14);
  // Far below the threshold the gradient is sigmoid(beta x).
  Tensor z = tensor({-3.0, 0.0, 3.0}).requires_grad_(true);
  sum(softplus(z, 2.0, 10.0)).backward();
  EXPECT_TRUE(test::all_close(z.grad(), tensor({sigmoid_ref(-6.0), 0.5, sigmoid_ref(6.0)}), 1e-15, 1e-14));
  EXPECT_TRUE(test::throws_error([&] { softplus(z, 0.0); }, "softplus", "beta"));
}

TEST(UnaryOps, PowZeroExponentHasZeroGradient) {
  Tensor x = tensor({0.0, -1.5, 2.0}).requires_grad_(true);
  Tensor y = pow(x, 0.0);
  EXPECT_EQ(y.to_vector<double>(), std::vector<double>(3, 1.0));
  sum(y).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), std::vector<double>(3, 0.0));
}

TEST(UnaryOps, SpecialValuesSaturate) {
  constexpr double inf = std::numeric_limits<double>::infinity();
  for (DType dtype : {DType::Float32, DType::Float64}) {
    Tensor x = from_vector(std::vector<double>{-inf, -1000.0, 1000.0, inf}, {4}, {.dtype = dtype});
    EXPECT_EQ(exp(x).to_vector<double>(), (std::vector<double>{0, 0, inf, inf})) << dtype;
    EXPECT_EQ(sigmoid(x).to_vector<double>(), (std::vector<double>{0, 0, 1, 1})) << dtype;
    EXPECT_EQ(tanh(x).to_vector<double>(), (std::vector<double>{-1, -1, 1, 1})) << dtype;
    EXPECT_EQ(relu(x).to_vector<double>(), (std::vector<double>{0, 0, 1000, inf})) << dtype;
    EXPECT_EQ(softplus(x).to_vector<double>(), (std::vector<double>{0, 0, 1000, inf})) << dtype;
    Tensor nan = full({3}, std::numeric_limits<double>::quiet_NaN(), {.dtype = dtype});
    for (const UnaryCase& c : kCases)
      for (double v : c.fn(nan).to_vector<double>()) EXPECT_TRUE(std::isnan(v)) << c.name << " " << dtype;
  }
}

}  // namespace
}  // namespace mg
