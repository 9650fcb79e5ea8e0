#include "test_util.h"

namespace mg {
namespace {

// The index into `own` (right-aligned, size-1 dims broadcast) of batch item i of `batch`.
int64_t broadcast_index(int64_t i, const Shape& batch, const Shape& own) {
  Shape multi(batch.size());
  for (int64_t d = static_cast<int64_t>(batch.size()) - 1; d >= 0; --d) {
    multi[d] = i % batch[d];
    i /= batch[d];
  }
  int64_t lead = static_cast<int64_t>(batch.size() - own.size()), index = 0;
  for (size_t d = 0; d < own.size(); ++d) index = index * own[d] + (own[d] == 1 ? 0 : multi[d + lead]);
  return index;
}

// PyTorch's matmul rules as plain float64 loops over the row-major values.
Tensor reference_matmul(const Tensor& a, const Tensor& b) {
  Shape as = a.shape(), bs = b.shape();
  if (as.size() == 1) as.insert(as.begin(), 1);
  if (bs.size() == 1) bs.push_back(1);
  int64_t n = as[as.size() - 2], k = as.back(), m = bs.back();
  Shape a_batch(as.begin(), as.end() - 2), b_batch(bs.begin(), bs.end() - 2);
  Shape batch = broadcast_shapes(a_batch, b_batch, "reference");
  std::vector<double> av = a.to_vector<double>(), bv = b.to_vector<double>();
  std::vector<double> out(shape_numel(batch) * n * m, 0.0);
  for (int64_t i = 0; i < shape_numel(batch); ++i) {
    int64_t ia = broadcast_index(i, batch, a_batch), ib = broadcast_index(i, batch, b_batch);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < m; ++c)
        for (int64_t j = 0; j < k; ++j) out[(i * n + r) * m + c] += av[(ia * n + r) * k + j] * bv[(ib * k + j) * m + c];
  }
  Shape out_shape = batch;
  if (a.dim() > 1) out_shape.push_back(n);
  if (b.dim() > 1) out_shape.push_back(m);
  return from_vector(out, out_shape);
}

// x @ weight^T + bias as plain float64 loops.
Tensor reference_linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  int64_t in = weight.size(1), out_features = weight.size(0), rows = x.numel() / in;
  std::vector<double> xv = x.to_vector<double>(), wv = weight.to_vector<double>();
  std::vector<double> bv = bias.defined() ? bias.to_vector<double>() : std::vector<double>(out_features, 0.0);
  std::vector<double> out(rows * out_features);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out_features; ++o) {
      double acc = bv[o];
      for (int64_t i = 0; i < in; ++i) acc += xv[r * in + i] * wv[o * in + i];
      out[r * out_features + o] = acc;
    }
  Shape shape(x.shape().begin(), x.shape().end() - 1);
  shape.push_back(out_features);
  return from_vector(out, shape);
}

struct MatmulCase {
  const char* name;
  Shape a, b, out;
  friend void PrintTo(const MatmulCase& c, std::ostream* os) { *os << c.name; }
};

const MatmulCase kCases[] = {
    {"dot", {4}, {4}, {}},
    {"vector_matrix", {3}, {3, 5}, {5}},
    {"matrix_vector", {3, 4}, {4}, {3}},
    {"matrix_matrix", {3, 4}, {4, 5}, {3, 5}},
    {"batched_matrix", {2, 3, 4}, {4, 5}, {2, 3, 5}},
    {"matrix_batched", {3, 4}, {2, 4, 5}, {2, 3, 5}},
    {"batched_batched", {3, 2, 4}, {3, 4, 2}, {3, 2, 2}},
    {"broadcast_batch", {2, 1, 3, 4}, {5, 4, 2}, {2, 5, 3, 2}},
    {"broadcast_size_one", {1, 3, 4}, {2, 4, 2}, {2, 3, 2}},
    {"vector_batched", {4}, {2, 4, 5}, {2, 5}},
    {"batched_vector", {2, 3, 4}, {4}, {2, 3}},
};

class Matmul : public ::testing::TestWithParam<MatmulCase> {};

TEST_P(Matmul, MatchesReference) {
  const MatmulCase& c = GetParam();
  Tensor a = test::random(c.a, 1), b = test::random(c.b, 2);
  Tensor out = matmul(a, b);
  ASSERT_EQ(out.shape(), c.out);
  EXPECT_TRUE(test::all_close(out, reference_matmul(a, b), 1e-12, 1e-12));
}

TEST_P(Matmul, Gradcheck) {
  const MatmulCase& c = GetParam();
  Tensor a = test::random(c.a, 3, DType::Float64, true), b = test::random(c.b, 4, DType::Float64, true);
  auto f = [](const TensorList& in) { return matmul(in[0], in[1]); };
  EXPECT_TRUE(test::passes_gradcheck(f, {a, b}));
  EXPECT_TRUE(test::passes_gradcheck(f, {a, b.detach()}));  // only a needs a gradient
  test::expect_same_on_devices(f, {a, b});
}

INSTANTIATE_TEST_SUITE_P(Shapes, Matmul, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

// Operands in every layout: transposed views (column-major, read in place), permuted batch dims,
// strided slices (copied first), and expanded batch dims (stride 0).
TEST(MatmulLayouts, NonContiguousOperandsMatchReference) {
  Tensor at = test::random({5, 3}, 5).transpose(0, 1);                   // (3, 5), column-major
  Tensor bt = test::random({4, 5}, 6).transpose(0, 1);                   // (5, 4), column-major
  Tensor batched_t = test::random({2, 4, 3}, 7).transpose(-1, -2);      // (2, 3, 4)
  Tensor permuted = test::random({3, 2, 4}, 8).permute({1, 0, 2});      // (2, 3, 4), batch stride 4
  Tensor sliced = slice(test::random({6, 10}, 9), 1, 0, 10, 2);          // (6, 5), column stride 2
  Tensor expanded = test::random({1, 4, 2}, 10).expand({2, 4, 2});      // batch stride 0
  Tensor vector_strided = slice(test::random({10}, 11), 0, 0, 10, 2);   // (5), stride 2
  std::vector<std::pair<Tensor, Tensor>> pairs = {
      {at, bt}, {at, test::random({5, 2}, 12)}, {test::random({2, 5}, 13), bt}, {batched_t, expanded},
      {permuted, expanded}, {permuted, test::random({4, 6}, 14).narrow(1, 1, 3)}, {sliced, bt.narrow(1, 0, 2)},
      {sliced.transpose(0, 1), sliced}, {vector_strided, bt}, {at, vector_strided}, {vector_strided, vector_strided}};
  for (const auto& [a, b] : pairs)
    EXPECT_TRUE(test::all_close(matmul(a, b), reference_matmul(a, b), 1e-12, 1e-12)) << a.shape() << " @ " << b.shape();
}

TEST(MatmulLayouts, GradcheckNonContiguous) {
  Tensor at = test::random({5, 3}, 15).transpose(0, 1).detach().requires_grad_(true);          // (3, 5)
  Tensor bt = test::random({2, 4, 5}, 16).transpose(-1, -2).detach().requires_grad_(true);     // (2, 5, 4)
  Tensor sliced = slice(test::random({5, 8}, 17), 1, 0, 8, 2).detach().requires_grad_(true);  // (5, 4)
  auto f = [](const TensorList& in) { return matmul(in[0], in[1]); };
  EXPECT_TRUE(test::passes_gradcheck(f, {at, bt}));
  EXPECT_TRUE(test::passes_gradcheck(f, {bt, sliced.transpose(0, 1)}));
  EXPECT_TRUE(test::passes_gradcheck(f, {sliced.transpose(0, 1), at.transpose(0, 1)}));
  test::expect_same_on_devices(f, {at, bt});
}

// Big enough for Eigen's own threading, and a batch of small products spread over threads.
TEST(MatmulLayouts, LargeAndManySmallMatchReference) {
  std::vector<std::pair<Shape, Shape>> shapes = {
      {{3, 130, 70}, {70, 90}}, {{2, 140, 130}, {2, 130, 150}}, {{16, 5, 6}, {16, 6, 7}}, {{200, 300}, {300, 1}}};
  for (const auto& [sa, sb] : shapes) {
    Tensor a = test::random(sa, 18), b = test::random(sb, 19);
    EXPECT_TRUE(test::all_close(matmul(a, b), reference_matmul(a, b), 1e-11, 1e-11)) << sa << " @ " << sb;
  }
}

TEST(MatmulLayouts, EmptyInnerDimensionGivesZeros) {
  Tensor out = matmul(zeros({3, 0}), zeros({0, 4}));
  ASSERT_EQ(out.shape(), (Shape{3, 4}));
  EXPECT_TRUE(test::all_close(out, zeros({3, 4})));
  EXPECT_EQ(matmul(zeros({2, 0, 3}), zeros({3, 5})).shape(), (Shape{2, 0, 5}));
}

TEST(MatmulPrecision, Float32AgreesWithFloat64) {
  Tensor a = test::random({3, 64, 70}, 20), b = test::random({70, 50}, 21);
  Tensor expected = matmul(a, b);
  Tensor actual = matmul(a.to(DType::Float32), b.to(DType::Float32));
  EXPECT_EQ(actual.dtype(), DType::Float32);
  EXPECT_TRUE(test::all_close(actual, expected, 1e-4, 1e-4));
  Tensor w = test::random({40, 70}, 22), bias = test::random({40}, 23);
  EXPECT_TRUE(test::all_close(linear(a.to(DType::Float32), w.to(DType::Float32), bias.to(DType::Float32)),
                              linear(a, w, bias), 1e-4, 1e-4));
}

TEST(MatmulErrors, NameTheOpAndShapes) {
  EXPECT_TRUE(test::throws_error([] { matmul(ones({3, 4}), ones({5, 6})); },
                                 "matmul: shapes [3, 4] and [5, 6] cannot be multiplied"));
  EXPECT_TRUE(test::throws_error([] { matmul(ones({3}), ones({4})); }, "matmul: shapes [3] and [4] cannot be multiplied"));
  EXPECT_TRUE(test::throws_error([] { matmul(ones({2, 3, 4}), ones({5, 4, 6})); },
                                 "matmul: shapes [2, 3, 4] and [5, 4, 6] cannot be multiplied", "[2] and [5]"));
  EXPECT_TRUE(test::throws_error([] { matmul(ones({}), ones({4})); }, "matmul: both arguments need at least 1 dimension"));
  EXPECT_TRUE(test::throws_error([] { matmul(ones({3, 4}), ones({4, 5}, {.dtype = DType::Float64})); }, "matmul",
                                 "float32, [4, 5] float64"));
  Tensor i = ones({3, 3}, {.dtype = DType::Int64});
  EXPECT_TRUE(test::throws_error([&] { matmul(i, i); }, "matmul", "int64"));
}

TEST(Linear, MatchesReferenceWithAndWithoutBias) {
  Tensor w = test::random({5, 4}, 24), bias = test::random({5}, 25);
  for (const Tensor& x : {test::random({2, 3, 4}, 26), test::random({4}, 27), test::random({3, 2, 4}, 28).transpose(0, 1)}) {
    EXPECT_TRUE(test::all_close(linear(x, w, bias), reference_linear(x, w, bias), 1e-12, 1e-12)) << x.shape();
    EXPECT_TRUE(test::all_close(linear(x, w), reference_linear(x, w, Tensor()), 1e-12, 1e-12)) << x.shape();
  }
  Tensor wt = test::random({4, 5}, 29).transpose(0, 1);  // a weight stored transposed
  Tensor x = test::random({6, 4}, 30);
  EXPECT_TRUE(test::all_close(linear(x, wt, bias), reference_linear(x, wt, bias), 1e-12, 1e-12));
  EXPECT_EQ(linear(zeros({0, 4}, {.dtype = DType::Float64}), w, bias).shape(), (Shape{0, 5}));
}

TEST(Linear, Gradcheck) {
  Tensor x = test::random({2, 3, 4}, 31, DType::Float64, true);
  Tensor w = test::random({5, 4}, 32, DType::Float64, true), bias = test::random({5}, 33, DType::Float64, true);
  Tensor xt = test::random({3, 2, 4}, 34).transpose(0, 1).detach().requires_grad_(true);  // non-contiguous
  auto with_bias = [](const TensorList& in) { return linear(in[0], in[1], in[2]); };
  auto without_bias = [](const TensorList& in) { return linear(in[0], in[1]); };
  EXPECT_TRUE(test::passes_gradcheck(with_bias, {x, w, bias}));
  EXPECT_TRUE(test::passes_gradcheck(with_bias, {xt, w, bias}));
  EXPECT_TRUE(test::passes_gradcheck(without_bias, {x, w}));
  EXPECT_TRUE(test::passes_gradcheck(with_bias, {x.detach(), w, bias}));  // weights only, as in fine-tuning
  EXPECT_TRUE(test::passes_gradcheck(with_bias, {test::random({4}, 35, DType::Float64, true), w, bias}));
  Tensor wt = test::random({4, 5}, 36).transpose(0, 1).detach().requires_grad_(true);  // (5, 4) stored transposed
  EXPECT_TRUE(test::passes_gradcheck(with_bias, {x, wt, bias}));
  test::expect_same_on_devices(with_bias, {x, w, bias});
  test::expect_same_on_devices(without_bias, {x, w});
}

TEST(Linear, ErrorsNameTheOpAndShapes) {
  EXPECT_TRUE(test::throws_error([] { linear(ones({2, 3}), ones({5, 4})); }, "linear: input [2, 3] and weight [5, 4]"));
  EXPECT_TRUE(test::throws_error([] { linear(ones({2, 4}), ones({4})); }, "linear: expected weight", "[4]"));
  EXPECT_TRUE(test::throws_error([] { linear(ones({2, 4}), ones({5, 4}), ones({4})); }, "linear: expected bias (5)",
                                 "[4]"));
  EXPECT_TRUE(test::throws_error([] { linear(ones({2, 4}), ones({5, 4}, {.dtype = DType::Float64})); }, "linear",
                                 "float64"));
}

TEST(MatmulCuda, MatchesCpuWhenAvailable) {
  MG_SKIP_WITHOUT_CUDA();
  auto f = [](const TensorList& in) { return matmul(in[0], in[1]); };
  for (const MatmulCase& c : kCases)
    test::expect_same_on_devices(f, {test::random(c.a, 36, DType::Float32, true), test::random(c.b, 37, DType::Float32, true)});
  Tensor at = test::random({70, 60}, 38, DType::Float32).transpose(0, 1).detach().requires_grad_(true);
  test::expect_same_on_devices(f, {at, test::random({2, 70, 50}, 39, DType::Float32, true)});
}

}  // namespace
}  // namespace mg
