// sum, mean, max, argmax: forward against plain loops, gradients, and errors.
#include <cmath>
#include <limits>

#include "ops/cpu/parallel.h"
#include "test_util.h"

namespace mg {
namespace {

// Row-major multi-index of flat position i in `shape`.
Shape unravel(int64_t i, const Shape& shape) {
  Shape index(shape.size());
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    index[d] = i % shape[d];
    i /= shape[d];
  }
  return index;
}

// Flat position, in the keepdim output, of the input element at `index`.
int64_t reduced_position(const Shape& index, const Shape& shape, const std::vector<bool>& reduced) {
  int64_t pos = 0;
  for (size_t d = 0; d < shape.size(); ++d) pos = pos * (reduced[d] ? 1 : shape[d]) + (reduced[d] ? 0 : index[d]);
  return pos;
}

std::vector<bool> reduced_mask(const Shape& dims, int64_t ndim) {
  std::vector<bool> reduced(ndim, dims.empty());
  for (int64_t d : dims) reduced[d < 0 ? d + ndim : d] = true;
  return reduced;
}

// Plain-loop sum (or mean) of x over dims, in the keepdim shape's row-major order.
std::vector<double> reference_sum(const Tensor& x, const Shape& dims, bool average) {
  std::vector<bool> reduced = reduced_mask(dims, x.dim());
  int64_t outputs = 1, count = 1;
  for (int64_t d = 0; d < x.dim(); ++d) (reduced[d] ? count : outputs) *= x.size(d);
  std::vector<double> out(outputs, 0.0), values = x.to_vector<double>();
  for (int64_t i = 0; i < x.numel(); ++i) out[reduced_position(unravel(i, x.shape()), x.shape(), reduced)] += values[i];
  if (average)
    for (double& v : out) v /= static_cast<double>(count);
  return out;
}

Shape expected_shape(const Shape& shape, const Shape& dims, bool keepdim) {
  std::vector<bool> reduced = reduced_mask(dims, static_cast<int64_t>(shape.size()));
  Shape out;
  for (size_t d = 0; d < shape.size(); ++d)
    if (!reduced[d] || keepdim) out.push_back(reduced[d] ? 1 : shape[d]);
  return out;
}

const Shape kDimSets[] = {{}, {0}, {1}, {3}, {-1}, {0, 2}, {1, 3}, {-1, -3}, {2, 0}, {0, 1, 2, 3}};

TEST(Sum, MatchesReferenceOverDimSets) {
  Tensor x = test::random({2, 3, 4, 5}, 1);
  for (const Shape& dims : kDimSets) {
    for (bool keepdim : {false, true}) {
      SCOPED_TRACE(testing::Message() << "dims " << dims << " keepdim " << keepdim);
      Tensor s = sum(x, dims, keepdim), m = mean(x, dims, keepdim);
      EXPECT_EQ(s.shape(), expected_shape(x.shape(), dims, keepdim));
      EXPECT_EQ(m.shape(), s.shape());
      std::vector<double> sv = s.to_vector<double>(), mv = m.to_vector<double>();
      std::vector<double> sr = reference_sum(x, dims, false), mr = reference_sum(x, dims, true);
      ASSERT_EQ(sv.size(), sr.size());
      for (size_t i = 0; i < sv.size(); ++i) {
        EXPECT_NEAR(sv[i], sr[i], 1e-12);
        EXPECT_NEAR(mv[i], mr[i], 1e-12);
      }
    }
  }
}

TEST(Sum, NonContiguousInputs) {
  Tensor base = test::random({4, 6, 5}, 2);
  Tensor permuted = base.permute({2, 0, 1});       // (5, 4, 6), strides (1, 30, 5)
  Tensor stepped = slice(base, 1, 1, 6, 2);        // (4, 3, 5), a step along dim 1
  for (const Tensor& x : {permuted, stepped}) {
    ASSERT_FALSE(x.is_contiguous());
    for (const Shape& dims : {Shape{}, Shape{0}, Shape{1}, Shape{-1}, Shape{0, 2}}) {
      std::vector<double> expected = reference_sum(x, dims, false);
      std::vector<double> actual = sum(x, dims).to_vector<double>();
      for (size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(actual[i], expected[i], 1e-12) << dims;
    }
  }
}

TEST(Sum, Float32AccumulatesAccurately) {
  // 100000 copies of 0.1f: a float accumulator drifts visibly, a double one does not.
  Tensor x = full({100000}, 0.1, {.dtype = DType::Float32});
  double expected = 100000.0 * static_cast<double>(0.1f);
  EXPECT_NEAR(sum(x).item<double>(), expected, 1e-3);
  EXPECT_NEAR(mean(x).item<double>(), static_cast<double>(0.1f), 1e-7);
  EXPECT_EQ(sum(x).dtype(), DType::Float32);
}

TEST(Sum, SameBitsForAnyThreadCount) {
  Tensor x = test::random({3, 70000}, 3, DType::Float32);
  Tensor all = test::random({200000}, 4, DType::Float32);
  int threads = get_num_threads();
  set_num_threads(1);
  std::vector<float> rows_1 = sum(x, {1}).to_vector<float>(), all_1 = sum(all).to_vector<float>();
  set_num_threads(std::max(2, threads));
  std::vector<float> rows_n = sum(x, {1}).to_vector<float>(), all_n = sum(all).to_vector<float>();
  set_num_threads(threads);
  EXPECT_EQ(rows_1, rows_n);
  EXPECT_EQ(all_1, all_n);
}

TEST(Sum, ScalarsAndEmptyTensors) {
  Tensor s = scalar_tensor(2.5, {.dtype = DType::Float64});
  EXPECT_EQ(sum(s).shape(), Shape{});
  EXPECT_DOUBLE_EQ(sum(s).item<double>(), 2.5);
  EXPECT_DOUBLE_EQ(sum(s, {0}).item<double>(), 2.5);  // a 0-d tensor accepts dim 0 / -1, like PyTorch
  EXPECT_DOUBLE_EQ(mean(s, {-1}, true).item<double>(), 2.5);
  Tensor e = zeros({0, 3});
  EXPECT_TRUE(test::all_close(sum(e, {0}), zeros({3})));
  EXPECT_EQ(sum(e, {1}).shape(), Shape{0});
  EXPECT_DOUBLE_EQ(sum(e).item<double>(), 0.0);
}

TEST(Sum, GradcheckIncludingNonContiguous) {
  Tensor x = test::random({2, 3, 4}, 5, DType::Float64, true);
  Tensor xt = test::random({4, 3, 2}, 6).permute({2, 1, 0}).detach().requires_grad_(true);
  for (const Shape& dims : {Shape{}, Shape{0}, Shape{-1}, Shape{0, 2}, Shape{2, 1}}) {
    for (bool keepdim : {false, true}) {
      SCOPED_TRACE(testing::Message() << "dims " << dims << " keepdim " << keepdim);
      auto f_sum = [&](const TensorList& in) { return sum(in[0], dims, keepdim); };
      auto f_mean = [&](const TensorList& in) { return mean(in[0], dims, keepdim); };
      EXPECT_TRUE(test::passes_gradcheck(f_sum, {x}));
      EXPECT_TRUE(test::passes_gradcheck(f_mean, {x}));
      EXPECT_TRUE(test::passes_gradcheck(f_sum, {xt}));
      EXPECT_TRUE(test::passes_gradcheck(f_mean, {xt}));
    }
  }
}

TEST(Sum, MeanGradientIsOneOverCount) {
  Tensor x = test::random({3, 4}, 7, DType::Float64, true);
  mean(x, {1}).backward(ones({3}, {.dtype = DType::Float64}));
  EXPECT_TRUE(test::all_close(x.grad(), full({3, 4}, 0.25, {.dtype = DType::Float64})));
}

TEST(Sum, ErrorsNameOpAndDims) {
  Tensor x = ones({2, 3});
  EXPECT_TRUE(test::throws_error([&] { sum(x, {1, -1}); }, "sum: dimension -1 repeats", "[1, -1]"));
  EXPECT_TRUE(test::throws_error([&] { mean(x, {0, 0}); }, "mean: dimension 0 repeats"));
  EXPECT_TRUE(test::throws_error([&] { sum(x, {2}); }, "sum: dimension 2 is out of range", "2 dimensions"));
  EXPECT_TRUE(test::throws_error([&] { mean(x, {-3}); }, "mean: dimension -3 is out of range"));
  EXPECT_TRUE(test::throws_error([&] { sum(ones({2}, {.dtype = DType::Int64})); }, "sum", "int64"));
  EXPECT_TRUE(test::throws_error([&] { mean(zeros({0, 3}), {0}); }, "mean: cannot average over zero elements"));
}

// ---- max and argmax

// Plain-loop maximum over `dim` (first index on ties): values and indices in keepdim order.
void reference_max(const Tensor& x, int64_t dim, std::vector<double>& values, std::vector<int64_t>& indices) {
  dim = dim < 0 ? dim + x.dim() : dim;
  std::vector<bool> reduced(x.dim(), false);
  reduced[dim] = true;
  int64_t outputs = x.numel() / x.size(dim);
  values.assign(outputs, -std::numeric_limits<double>::infinity());
  indices.assign(outputs, -1);
  std::vector<double> xv = x.to_vector<double>();
  for (int64_t i = 0; i < x.numel(); ++i) {
    Shape index = unravel(i, x.shape());
    int64_t pos = reduced_position(index, x.shape(), reduced);
    if (indices[pos] < 0 || xv[i] > values[pos]) {
      values[pos] = xv[i];
      indices[pos] = index[dim];
    }
  }
}

TEST(Max, MatchesReferenceAlongEveryDim) {
  Generator gen(8);
  // Small integers: many ties, so "first index attaining the max" is exercised.
  Tensor ints = randint(0, 4, {3, 4, 5}, gen).to(DType::Float64);
  Tensor noncontiguous = test::random({5, 3, 4}, 9).permute({1, 2, 0});
  for (const Tensor& x : {ints, noncontiguous}) {
    for (int64_t dim : {0, 1, 2, -1, -3}) {
      for (bool keepdim : {false, true}) {
        SCOPED_TRACE(testing::Message() << "dim " << dim << " keepdim " << keepdim);
        std::vector<double> values;
        std::vector<int64_t> indices;
        reference_max(x, dim, values, indices);
        Tensor m = max(x, dim, keepdim), a = argmax(x, dim, keepdim);
        EXPECT_EQ(m.shape(), expected_shape(x.shape(), {dim}, keepdim));
        EXPECT_EQ(a.shape(), m.shape());
        EXPECT_EQ(a.dtype(), DType::Int64);
        EXPECT_EQ(m.to_vector<double>(), values);
        EXPECT_EQ(a.to_vector<int64_t>(), indices);
      }
    }
  }
}

TEST(Max, OverAllElements) {
  Tensor x = tensor({{1.f, 7.f, -2.f}, {7.f, 0.f, 3.f}});
  Tensor m = max(x);
  EXPECT_EQ(m.shape(), Shape{});
  EXPECT_EQ(m.item<float>(), 7.f);
  Tensor xg = x.to(DType::Float64).detach().requires_grad_(true);
  max(xg).backward();
  EXPECT_EQ(xg.grad().to_vector<double>(), (std::vector<double>{0, 1, 0, 0, 0, 0}));  // the first 7 only
}

TEST(Max, GradientGoesToFirstMaximum) {
  Tensor x = tensor({3.0, 1.0, 3.0, 2.0}).requires_grad_(true);
  Tensor m = max(x, 0);
  EXPECT_DOUBLE_EQ(m.item<double>(), 3.0);
  m.backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{1, 0, 0, 0}));
}

TEST(Max, Gradcheck) {
  Tensor x = test::random({3, 4, 5}, 10, DType::Float64, true);
  Tensor xt = test::random({5, 4, 3}, 11).transpose(0, 2).detach().requires_grad_(true);
  for (int64_t dim : {0, 1, -1}) {
    for (bool keepdim : {false, true}) {
      auto f = [&](const TensorList& in) { return max(in[0], dim, keepdim); };
      EXPECT_TRUE(test::passes_gradcheck(f, {x})) << dim;
      EXPECT_TRUE(test::passes_gradcheck(f, {xt})) << dim;
    }
  }
  EXPECT_TRUE(test::passes_gradcheck([](const TensorList& in) { return max(in[0]); }, {xt}));
}

TEST(Max, NaNIsTheMaximum) {
  double nan = std::numeric_limits<double>::quiet_NaN();
  Tensor x = tensor({1.0, nan, 5.0, nan});
  EXPECT_TRUE(std::isnan(max(x, 0).item<double>()));
  EXPECT_EQ(argmax(x, 0).item<int64_t>(), 1);
}

TEST(Max, ArgmaxOfIntegersAndScalars) {
  Tensor i = tensor({int64_t{4}, int64_t{9}, int64_t{-1}, int64_t{9}});
  EXPECT_EQ(argmax(i, 0).item<int64_t>(), 1);
  EXPECT_EQ(max(i, -1).item<int64_t>(), 9);
  Tensor s = scalar_tensor(3.5, {.dtype = DType::Float64, .requires_grad = true});
  EXPECT_EQ(max(s, 0).shape(), Shape{});
  EXPECT_EQ(argmax(s, -1).item<int64_t>(), 0);
  max(s, 0, true).backward();
  EXPECT_DOUBLE_EQ(s.grad().item<double>(), 1.0);
}

TEST(Max, ArgmaxIsNotDifferentiable) {
  Tensor x = test::random({2, 3}, 12, DType::Float64, true);
  Tensor a = argmax(x, 1);
  EXPECT_FALSE(a.requires_grad());
  EXPECT_EQ(a.grad_fn(), nullptr);
}

TEST(Max, ErrorsNameOpAndShape) {
  Tensor x = ones({2, 0, 3});
  EXPECT_TRUE(test::throws_error([&] { max(x, 1); }, "max: cannot reduce over dimension 1 of size 0", "[2, 0, 3]"));
  EXPECT_TRUE(test::throws_error([&] { argmax(x, -2); }, "argmax: cannot reduce over dimension 1", "[2, 0, 3]"));
  EXPECT_TRUE(test::throws_error([&] { max(x); }, "max: cannot take the maximum of an empty tensor", "[2, 0, 3]"));
  EXPECT_TRUE(test::throws_error([&] { max(ones({2, 3}), 2); }, "max: dimension 2 is out of range"));
  EXPECT_TRUE(test::throws_error([&] { argmax(ones({2, 3}), -3); }, "argmax: dimension -3 is out of range"));
  EXPECT_TRUE(test::throws_error([&] { max(scalar_tensor(1.0), 1); }, "max: dimension 1 is out of range"));
}

}  // namespace
}  // namespace mg
