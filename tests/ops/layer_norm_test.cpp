// The fused layer_norm op (ops/layer_norm.h) and the LayerNorm module over it.
#include "ops/layer_norm.h"

#include <cmath>

#include "nn/layer_norm.h"
#include "ops/cpu/parallel.h"
#include "test_util.h"

namespace mg {
namespace {

// Plain-loop reference in double: x (rows, D) -> (x - mean) / sqrt(var + eps) * w + b.
Tensor layer_norm_reference(const Tensor& x, const Tensor& w, const Tensor& b, double eps) {
  const int64_t dim = x.size(-1), rows = x.numel() / dim;
  std::vector<double> xv = x.to_vector<double>(), out(xv.size());
  std::vector<double> wv = w.defined() ? w.to_vector<double>() : std::vector<double>(dim, 1.0);
  std::vector<double> bv = b.defined() ? b.to_vector<double>() : std::vector<double>(dim, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < dim; ++i) mean += xv[r * dim + i] / dim;
    for (int64_t i = 0; i < dim; ++i) var += (xv[r * dim + i] - mean) * (xv[r * dim + i] - mean) / dim;
    for (int64_t i = 0; i < dim; ++i) out[r * dim + i] = (xv[r * dim + i] - mean) / std::sqrt(var + eps) * wv[i] + bv[i];
  }
  return from_vector(out, x.shape());
}

TEST(LayerNorm, ForwardMatchesReference) {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    for (const Shape& shape : {Shape{2, 3, 7}, Shape{1, 1}, Shape{5, 129}, Shape{4, 1000}}) {
      const int64_t dim = shape.back();
      // An offset far from zero: E[x^2] - mean^2 would cancel; the two-pass variance must not.
      Tensor x = test::random(shape, 1, dtype, false, 99, 103);
      Tensor w = test::random({dim}, 2, dtype, false, 0.5, 1.5), b = test::random({dim}, 3, dtype, false, -1, 1);
      Tensor out = layer_norm(x, w, b, 1e-5);
      EXPECT_EQ(out.shape(), x.shape());
      EXPECT_EQ(out.dtype(), dtype);
      const double tol = dtype == DType::Float32 ? 2e-4 : 1e-10;
      EXPECT_TRUE(test::all_close(out, layer_norm_reference(x, w, b, 1e-5), tol, tol)) << shape << " " << dtype;
      // Without weight and bias: plain normalization.
      EXPECT_TRUE(test::all_close(layer_norm(x, Tensor(), Tensor(), 1e-5),
                                  layer_norm_reference(x, Tensor(), Tensor(), 1e-5), tol, tol));
    }
  }
}

TEST(LayerNorm, GradcheckInputWeightAndBias) {
  auto f = [](const TensorList& in) { return layer_norm(in[0], in[1], in[2], 1e-5); };
  Tensor x = test::random({3, 4, 5}, 3, DType::Float64, true, -2, 2);
  Tensor w = test::random({5}, 4, DType::Float64, true, 0.5, 1.5), b = test::random({5}, 5, DType::Float64, true);
  EXPECT_TRUE(test::passes_gradcheck(f, {x, w, b}));
  // Non-contiguous input: (5, 4) transposed to (4, 5).
  Tensor xt = test::random({5, 4}, 6, DType::Float64, false, -2, 2).transpose(0, 1).detach().requires_grad_(true);
  EXPECT_TRUE(test::passes_gradcheck(f, {xt, w, b}));
  // Some inputs constant or absent; a one-element row; a large eps.
  Tensor w_const = test::random({5}, 7, DType::Float64, false, 0.5, 1.5);
  EXPECT_TRUE(test::passes_gradcheck(f, {x, w_const, Tensor()}));
  EXPECT_TRUE(test::passes_gradcheck(f, {test::random({3, 5}, 8, DType::Float64), Tensor(), b}));
  EXPECT_TRUE(test::passes_gradcheck(f, {test::random({4, 1}, 9, DType::Float64, true), Tensor(), Tensor()}));
  EXPECT_TRUE(test::passes_gradcheck([](const TensorList& in) { return layer_norm(in[0], in[1], in[2], 0.5); },
                                     {x, w, b}));
}

TEST(LayerNorm, ParameterGradientsAreThreadCountFree) {
  // Enough rows for many chunks of partial sums; the bits must not depend on the thread count.
  Tensor x = test::random({700, 33}, 10, DType::Float32, false, -2, 2);
  Tensor g = test::random({700, 33}, 11, DType::Float32);
  auto grads = [&](int threads) {
    int previous = get_num_threads();
    set_num_threads(threads);
    Tensor w = ones({33}).requires_grad_(true), b = zeros({33}).requires_grad_(true);
    Tensor xi = x.detach().requires_grad_(true);
    layer_norm(xi, w, b, 1e-5).backward(g);
    set_num_threads(previous);
    return std::vector<std::vector<float>>{w.grad().to_vector<float>(), b.grad().to_vector<float>(),
                                           xi.grad().to_vector<float>()};
  };
  EXPECT_EQ(grads(1), grads(2));
}

TEST(LayerNorm, Errors) {
  Tensor x = ones({2, 4});
  EXPECT_TRUE(test::throws_error([&] { layer_norm(x, ones({3}), Tensor()); }, "layer_norm: weight of shape [3]",
                                 "input [2, 4]"));
  EXPECT_TRUE(test::throws_error([&] { layer_norm(x, ones({4}), ones({4, 1})); }, "layer_norm: bias of shape [4, 1]"));
  EXPECT_TRUE(test::throws_error([&] { layer_norm(x, ones({4}, {.dtype = DType::Float64}), Tensor()); }, "layer_norm",
                                 "float64"));
  EXPECT_TRUE(test::throws_error([&] { layer_norm(ones({2}, {.dtype = DType::Int64}), Tensor(), Tensor()); },
                                 "layer_norm", "int64"));
  EXPECT_TRUE(test::throws_error([&] { layer_norm(x, Tensor(), Tensor(), -1.0); }, "layer_norm: eps must be non-negative"));
  EXPECT_TRUE(test::throws_error([&] { layer_norm(ones({}), Tensor(), Tensor()); }, "layer_norm: expected an input with at least one dimension"));
}

TEST(LayerNormModule, ForwardGradAndInit) {
  nn::LayerNorm norm(6, 1e-5, DType::Float64);
  EXPECT_EQ(norm.weight.to_vector<double>(), std::vector<double>(6, 1.0));
  EXPECT_EQ(norm.bias.to_vector<double>(), std::vector<double>(6, 0.0));
  EXPECT_EQ(norm.named_parameters()[0].first, "weight");
  EXPECT_EQ(norm.named_parameters()[1].first, "bias");
  Tensor x = test::random({2, 5, 6}, 12, DType::Float64, true);
  EXPECT_TRUE(test::all_close(norm(x), layer_norm_reference(x, norm.weight, norm.bias, 1e-5), 1e-12, 1e-12));
  EXPECT_TRUE(test::passes_gradcheck([&](const TensorList& in) { return norm(in[0]); }, {x}));
  EXPECT_TRUE(test::throws_error([&] { nn::LayerNorm bad(0); }, "LayerNorm: dim must be positive"));
  EXPECT_TRUE(test::throws_error([&] { norm(ones({2, 5}, {.dtype = DType::Float64})); }, "LayerNorm", "[2, 5]"));
}

}  // namespace
}  // namespace mg
