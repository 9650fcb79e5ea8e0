// softmax, log_softmax and cross_entropy: plain-loop references, float64 gradcheck on every kind
// of dimension, and the errors.
#include <cmath>
#include <limits>

#include "ops/cpu/parallel.h"
#include "test_util.h"

namespace mg {
namespace {

// Reference softmax / log_softmax of x along dim, by plain loops in double over (outer, C, inner).
std::vector<double> softmax_reference(const Tensor& x, int64_t dim, bool log) {
  std::vector<double> v = x.to_vector<double>(), out(v.size());
  int64_t d = dim < 0 ? dim + x.dim() : dim, outer = 1, inner = 1, C = x.size(d);
  for (int64_t k = 0; k < d; ++k) outer *= x.size(k);
  for (int64_t k = d + 1; k < x.dim(); ++k) inner *= x.size(k);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      auto at = [&](int64_t c) { return (o * C + c) * inner + i; };
      double m = -INFINITY, s = 0;
      for (int64_t c = 0; c < C; ++c) m = std::max(m, v[at(c)]);
      for (int64_t c = 0; c < C; ++c) s += std::exp(v[at(c)] - m);
      for (int64_t c = 0; c < C; ++c) out[at(c)] = log ? v[at(c)] - m - std::log(s) : std::exp(v[at(c)] - m) / s;
    }
  return out;
}

TEST(Softmax, MatchesReferenceOnEveryDim) {
  // (2, 3, 130): dim 1 has 130 columns inside, more than one column block of the kernel.
  for (const Shape& shape : {Shape{4, 6, 5}, Shape{2, 3, 130}, Shape{3, 1000}, Shape{7}}) {
    for (int64_t dim = -1; dim < static_cast<int64_t>(shape.size()); ++dim) {
      for (bool log : {false, true}) {
        Tensor x = test::random(shape, 1 + dim, DType::Float64, false, -5.0, 5.0);
        Tensor expected = from_vector(softmax_reference(x, dim, log), shape);
        Tensor out = log ? log_softmax(x, dim) : softmax(x, dim);
        EXPECT_TRUE(test::all_close(out, expected, 1e-14, 1e-13)) << shape << " dim " << dim << " log " << log;
        Tensor outf = log ? log_softmax(x.to(DType::Float32), dim) : softmax(x.to(DType::Float32), dim);
        EXPECT_TRUE(test::all_close(outf, expected, 1e-6, 1e-5)) << shape << " float32 dim " << dim;
      }
    }
  }
}

// Plain-loop gradients of sum(g * softmax(x, dim)) (log: sum(g * log_softmax)): per slice over C,
// softmax dx = y (g - sum(g y)); log_softmax dx = g - exp(y) sum(g).
std::vector<double> softmax_backward_reference(const Tensor& y, const Tensor& g, int64_t dim, bool log) {
  std::vector<double> yv = y.to_vector<double>(), gv = g.to_vector<double>(), dx(yv.size());
  int64_t d = dim < 0 ? dim + y.dim() : dim, outer = 1, inner = 1, C = y.size(d);
  for (int64_t k = 0; k < d; ++k) outer *= y.size(k);
  for (int64_t k = d + 1; k < y.dim(); ++k) inner *= y.size(k);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      auto at = [&](int64_t c) { return (o * C + c) * inner + i; };
      double s = 0;
      for (int64_t c = 0; c < C; ++c) s += log ? gv[at(c)] : gv[at(c)] * yv[at(c)];
      for (int64_t c = 0; c < C; ++c)
        dx[at(c)] = log ? gv[at(c)] - std::exp(yv[at(c)]) * s : yv[at(c)] * (gv[at(c)] - s);
    }
  return dx;
}

// Backward values where the kernels split work: rows of C = 37 (more than the 16 lanes, with a
// tail), and a middle dim of C = 37 over 150 columns (column blocks of 64, 64 and 22), against
// the plain loops; float64 to float64 tolerances, float32 too.
TEST(Softmax, BackwardValuesAcrossLanesAndColumnBlocks) {
  for (auto [shape, dim] : {std::pair{Shape{5, 37}, int64_t{-1}}, std::pair{Shape{3, 37, 150}, int64_t{1}},
                            std::pair{Shape{2, 1000}, int64_t{-1}}}) {
    for (bool log : {false, true}) {
      Tensor x64 = test::random(shape, 31, DType::Float64, false, -5, 5), g64 = test::random(shape, 32, DType::Float64);
      Tensor y64 = from_vector(softmax_reference(x64, dim, log), shape);
      Tensor expected = from_vector(softmax_backward_reference(y64, g64, dim, log), shape);
      for (DType dtype : {DType::Float64, DType::Float32}) {
        const bool f64 = dtype == DType::Float64;
        Tensor x = x64.to(dtype).detach().requires_grad_(true);
        (log ? log_softmax(x, dim) : softmax(x, dim)).backward(g64.to(dtype));
        EXPECT_TRUE(test::all_close(x.grad(), expected, f64 ? 1e-13 : 1e-5, f64 ? 1e-11 : 1e-4))
            << shape << " dim " << dim << (log ? " log_softmax " : " softmax ") << dtype;
      }
    }
  }
}

TEST(Softmax, ResultsDoNotDependOnThreadCount) {
  Tensor x = test::random({64, 3000}, 11, DType::Float32, false, -8.0, 8.0);
  Tensor xt = test::random({300, 2, 130}, 12, DType::Float32, false, -8.0, 8.0);
  Generator gen(13);
  Tensor targets = randint(0, 3000, {64}, gen);
  auto run = [&] {
    return std::vector<std::vector<float>>{softmax(x, -1).to_vector<float>(), log_softmax(xt, 0).to_vector<float>(),
                                           cross_entropy(x, targets).to_vector<float>()};
  };
  int threads = get_num_threads();
  set_num_threads(1);
  auto one = run();
  set_num_threads(std::max(threads, 2));
  auto many = run();
  set_num_threads(threads);
  EXPECT_EQ(one, many);
}

TEST(Softmax, EmptyTensors) {
  EXPECT_EQ(softmax(zeros({0, 5}), -1).shape(), (Shape{0, 5}));
  EXPECT_EQ(log_softmax(zeros({3, 0}), -1).shape(), (Shape{3, 0}));
  EXPECT_EQ(softmax(zeros({3, 0, 2}), 1).shape(), (Shape{3, 0, 2}));
}

TEST(Softmax, NonContiguousInputAndScalar) {
  Tensor x = test::random({5, 4, 3}, 2).permute({2, 0, 1});  // (3, 5, 4), non-contiguous
  for (int64_t dim : {0, 1, 2})
    EXPECT_TRUE(test::all_close(softmax(x, dim), from_vector(softmax_reference(x, dim, false), x.shape()), 1e-14));
  Tensor s = scalar_tensor(3.0, {.dtype = DType::Float64});
  EXPECT_EQ(softmax(s, 0).item<double>(), 1.0);
  EXPECT_EQ(log_softmax(s, -1).item<double>(), 0.0);
}

TEST(Softmax, LargeLogitsStayFinite) {
  Tensor x = tensor({{1000.0, 999.0, -1000.0}, {-1e4, -1e4 - 1.0, -1e4 - 2.0}});
  std::vector<double> expected = softmax_reference(x, 1, true);
  for (DType dtype : {DType::Float64, DType::Float32}) {
    const bool f64 = dtype == DType::Float64;
    Tensor y = log_softmax(x.to(dtype), 1);
    EXPECT_TRUE(test::all_close(y, from_vector(expected, {2, 3}), f64 ? 1e-12 : 1e-4, f64 ? 1e-12 : 1e-6)) << dtype;
    EXPECT_TRUE(test::all_close(softmax(x.to(dtype), -1), exp(from_vector(expected, {2, 3})), f64 ? 1e-15 : 1e-7,
                                f64 ? 1e-12 : 1e-5));
  }
}

TEST(Softmax, GradcheckOnFirstLastAndMiddleDim) {
  for (int64_t dim : {0, -1, 1}) {
    for (bool log : {false, true}) {
      auto f = [&](const TensorList& in) { return log ? log_softmax(in[0], dim) : softmax(in[0], dim); };
      Tensor x = test::random({3, 4, 5}, 3, DType::Float64, true, -2.0, 2.0);
      EXPECT_TRUE(test::passes_gradcheck(f, {x})) << "dim " << dim << " log " << log;
      Tensor xt = test::random({5, 4, 3}, 4, DType::Float64, false, -2.0, 2.0).transpose(0, 2);
      xt = xt.detach().requires_grad_(true);  // (3, 4, 5), non-contiguous
      EXPECT_TRUE(test::passes_gradcheck(f, {xt})) << "non-contiguous dim " << dim << " log " << log;
    }
  }
}

TEST(Softmax, Errors) {
  Tensor i = ones({2, 3}, {.dtype = DType::Int64});
  EXPECT_TRUE(test::throws_error([&] { softmax(i, -1); }, "softmax", "int64"));
  EXPECT_TRUE(test::throws_error([&] { log_softmax(ones({2, 3}), 2); }, "log_softmax", "dimension 2"));
}

// Reference cross entropy: mean over non-ignored rows of logsumexp(row) - row[target].
double cross_entropy_reference(const Tensor& logits, const std::vector<int64_t>& targets, int64_t ignore_index) {
  int64_t C = logits.size(-1);
  std::vector<double> lsm = softmax_reference(logits, -1, true);
  double total = 0;
  int64_t count = 0;
  for (size_t n = 0; n < targets.size(); ++n) {
    if (targets[n] == ignore_index) continue;
    total -= lsm[n * C + targets[n]];
    ++count;
  }
  return total / static_cast<double>(count);
}

TEST(CrossEntropy, MatchesReferenceWithIgnoredTargets) {
  Tensor logits = test::random({2, 3, 7}, 5, DType::Float64, false, -4.0, 4.0);  // (B, L, C)
  std::vector<int64_t> t = {0, 6, -100, 3, 2, -100};
  Tensor targets = from_vector(t, {2, 3});
  double expected = cross_entropy_reference(logits, t, -100);
  Tensor loss = cross_entropy(logits, targets);
  EXPECT_EQ(loss.dim(), 0);
  EXPECT_NEAR(loss.item<double>(), expected, 1e-13);
  EXPECT_NEAR(cross_entropy(logits.to(DType::Float32), targets).item<double>(), expected, 1e-5);
  // A custom ignore_index that is also a valid class (PyTorch allows it).
  std::vector<int64_t> t2 = {0, 6, 1, 3, 2, 3};
  EXPECT_NEAR(cross_entropy(logits, from_vector(t2, {2, 3}), 3).item<double>(),
              cross_entropy_reference(logits, t2, 3), 1e-13);
}

TEST(CrossEntropy, Gradcheck) {
  Tensor logits = test::random({6, 5}, 6, DType::Float64, true, -3.0, 3.0);
  for (std::vector<int64_t> t : {std::vector<int64_t>{0, 1, 2, 3, 4, 0}, std::vector<int64_t>{4, -100, 1, -100, 0, 2}}) {
    Tensor targets = from_vector(t, {6});
    EXPECT_TRUE(test::passes_gradcheck([&](const TensorList& in) { return cross_entropy(in[0], targets); }, {logits}));
  }
  Tensor lt = test::random({5, 2, 3}, 7, DType::Float64, false, -3.0, 3.0).transpose(0, 2);  // (3, 2, 5)
  lt = lt.detach().requires_grad_(true);
  Tensor targets = from_vector(std::vector<int64_t>{1, 4, 7, 0, 2, 3}, {3, 2});
  EXPECT_TRUE(test::passes_gradcheck([&](const TensorList& in) { return cross_entropy(in[0], targets, 7); }, {lt}));
}

TEST(CrossEntropy, GradientIsSoftmaxMinusOneHotOverCount) {
  Tensor logits = test::random({3, 4}, 8, DType::Float32, true, -2.0, 2.0);
  Tensor targets = from_vector(std::vector<int64_t>{2, -100, 0}, {3});
  cross_entropy(logits, targets).backward();
  std::vector<double> p = softmax_reference(logits.detach(), -1, false), g = logits.grad().to_vector<double>();
  for (int64_t c = 0; c < 4; ++c) {
    EXPECT_NEAR(g[0 * 4 + c], (p[0 * 4 + c] - (c == 2)) / 2.0, 1e-6);
    EXPECT_EQ(g[1 * 4 + c], 0.0);  // ignored row
    EXPECT_NEAR(g[2 * 4 + c], (p[2 * 4 + c] - (c == 0)) / 2.0, 1e-6);
  }
}

TEST(CrossEntropy, AllIgnoredIsNanWithZeroGradient) {
  // Like PyTorch: the mean over zero targets is 0 / 0 = nan; nothing flows back.
  Tensor logits = test::random({3, 4}, 9, DType::Float64, true);
  Tensor loss = cross_entropy(logits, full({3}, -100.0, {.dtype = DType::Int64}));
  EXPECT_TRUE(std::isnan(loss.item<double>()));
  loss.backward();
  EXPECT_EQ(logits.grad().to_vector<double>(), std::vector<double>(12, 0.0));
}

TEST(CrossEntropy, Errors) {
  Tensor logits = ones({4, 5});
  EXPECT_TRUE(test::throws_error([&] { cross_entropy(logits, zeros({3}, {.dtype = DType::Int64})); },
                                 "cross_entropy", "[3] do not match logits [4, 5]"));
  EXPECT_TRUE(test::throws_error([&] { cross_entropy(logits, zeros({4})); }, "cross_entropy", "float32"));
  EXPECT_TRUE(test::throws_error([&] { cross_entropy(logits, from_vector(std::vector<int64_t>{0, 5, 1, 1}, {4})); },
                                 "cross_entropy: target 5 at position 1", "[0, 5)"));
  EXPECT_TRUE(test::throws_error([&] { cross_entropy(logits, from_vector(std::vector<int64_t>{0, 1, -1, 1}, {4})); },
                                 "cross_entropy: target -1", "[4, 5]"));
  EXPECT_TRUE(test::throws_error([&] { cross_entropy(ones({4, 5}, {.dtype = DType::Int64}), zeros({4}, {.dtype = DType::Int64})); },
                                 "cross_entropy", "int64"));
}

}  // namespace
}  // namespace mg
