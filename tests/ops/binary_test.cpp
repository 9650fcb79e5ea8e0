#include "test_util.h"

namespace mg {
namespace {

using BinaryFn = Tensor (*)(const Tensor&, const Tensor&);
struct BinaryCase {
  const char* name;
  BinaryFn fn;
  double (*reference)(double, double);
  friend void PrintTo(const BinaryCase& c, std::ostream* os) { *os << c.name; }
};

const BinaryCase kCases[] = {
    {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }, [](double a, double b) { return a + b; }},
    {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }, [](double a, double b) { return a - b; }},
    {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }, [](double a, double b) { return a * b; }},
    {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); }, [](double a, double b) { return a / b; }},
};

class BinaryOps : public ::testing::TestWithParam<BinaryCase> {};

TEST_P(BinaryOps, MatchesReferenceWithBroadcasting) {
  const BinaryCase& c = GetParam();
  Tensor a = test::random({3, 1, 5}, 1, DType::Float64, false, 0.5, 2.0);
  Tensor b = test::random({4, 1}, 2, DType::Float64, false, 0.5, 2.0);
  Tensor out = c.fn(a, b);
  ASSERT_EQ(out.shape(), (Shape{3, 4, 5}));
  std::vector<double> av = a.to_vector<double>(), bv = b.to_vector<double>(), ov = out.to_vector<double>();
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j)
      for (int k = 0; k < 5; ++k) EXPECT_DOUBLE_EQ(ov[(i * 4 + j) * 5 + k], c.reference(av[i * 5 + k], bv[j]));
}

TEST_P(BinaryOps, GradcheckBroadcastAndNonContiguous) {
  const BinaryCase& c = GetParam();
  Tensor a = test::random({4, 3}, 3, DType::Float64, true, 0.5, 2.0);
  Tensor b = test::random({3}, 4, DType::Float64, true, 0.5, 2.0);
  Tensor at = test::random({3, 4}, 5, DType::Float64, false, 0.5, 2.0).transpose(0, 1);  // non-contiguous
  at = at.detach().requires_grad_(true);
  auto f = [&](const TensorList& in) { return c.fn(in[0], in[1]); };
  EXPECT_TRUE(test::passes_gradcheck(f, {a, b}));
  EXPECT_TRUE(test::passes_gradcheck(f, {at, b}));
  EXPECT_TRUE(test::passes_gradcheck(f, {b, a}));
  test::expect_same_on_devices(f, {a, b});
}

TEST_P(BinaryOps, ScalarForms) {
  Tensor a = test::random({2, 3}, 6, DType::Float64, true, 0.5, 2.0);
  EXPECT_TRUE(test::passes_gradcheck([](const TensorList& in) { return 2.0 / in[0] - in[0] * 3.0 + 1.0; }, {a}));
  EXPECT_TRUE(test::passes_gradcheck([](const TensorList& in) { return (1.0 - in[0]) / 4.0; }, {a}));
}

TEST_P(BinaryOps, ErrorsNameOpAndShapes) {
  const BinaryCase& c = GetParam();
  Tensor a = ones({3, 4}), b = ones({5, 6});
  EXPECT_TRUE(test::throws_error([&] { c.fn(a, b); }, c.name, "[3, 4] and [5, 6]"));
  Tensor d = ones({3, 4}, {.dtype = DType::Float64});
  EXPECT_TRUE(test::throws_error([&] { c.fn(a, d); }, c.name, "float64"));
  Tensor i = ones({3, 4}, {.dtype = DType::Int64});
  EXPECT_TRUE(test::throws_error([&] { c.fn(i, i); }, c.name, "int64"));
}

INSTANTIATE_TEST_SUITE_P(Ops, BinaryOps, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(SumToShape, ReducesBroadcastDims) {
  Tensor t = test::random({2, 3, 4}, 7);
  EXPECT_TRUE(test::all_close(sum_to_shape(t, {3, 1}), sum(t, {0, 2}, true).reshape({3, 1})));
  EXPECT_TRUE(test::throws_error([&] { sum_to_shape(t, {5}); }, "sum_to_shape"));
}

TEST(InPlace, AddAndMulRefuseTensorsThatRequireGrad) {
  Tensor w = ones({3}).requires_grad_(true);
  EXPECT_TRUE(test::throws_error([&] { mul_inplace(w, 2.0); }, "mul_inplace", "NoGradGuard"));
  NoGradGuard guard;
  add_inplace(w, ones({3}), 0.5);
  mul_inplace(w, 2.0);
  EXPECT_TRUE(test::all_close(w, full({3}, 3.0)));
}

}  // namespace
}  // namespace mg
