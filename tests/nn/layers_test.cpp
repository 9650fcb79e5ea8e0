// Linear, Embedding and CausalConv1d modules: forward against plain loops, gradients by
// gradcheck, parameter names and shapes, PyTorch's default init bounds.
#include <cmath>

#include "nn/conv1d.h"
#include "nn/embedding.h"
#include "nn/linear.h"
#include "test_util.h"

namespace mg::nn {
namespace {

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to_vector<double>()) m = std::max(m, std::abs(v));
  return m;
}

TEST(Linear, ForwardMatchesLoopAndGradcheck) {
  Generator gen(1);
  Linear layer(4, 3, gen, /*bias=*/true, DType::Float64);
  ASSERT_EQ(layer.weight.shape(), (Shape{3, 4}));
  ASSERT_EQ(layer.bias.shape(), Shape{3});
  Tensor x = test::random({2, 5, 4}, 2, DType::Float64, true);
  Tensor y = layer(x);
  ASSERT_EQ(y.shape(), (Shape{2, 5, 3}));
  std::vector<double> xv = x.to_vector<double>(), wv = layer.weight.to_vector<double>(),
                      bv = layer.bias.to_vector<double>();
  std::vector<double> expected;
  for (int r = 0; r < 10; ++r)
    for (int o = 0; o < 3; ++o) {
      double acc = bv[o];
      for (int i = 0; i < 4; ++i) acc += xv[r * 4 + i] * wv[o * 4 + i];
      expected.push_back(acc);
    }
  EXPECT_TRUE(test::all_close(y, from_vector(expected, {2, 5, 3}), 1e-12, 1e-12));
  EXPECT_TRUE(test::passes_gradcheck([&](const TensorList& in) { return linear(in[0], in[1], in[2]); },
                                     {x, layer.weight, layer.bias}));
  EXPECT_TRUE(test::passes_gradcheck([&](const TensorList& in) { return layer(in[0]); }, {x}));
}

TEST(Linear, NoBiasNamesAndInitBound) {
  Generator gen(2);
  Linear layer(256, 64, gen, /*bias=*/false);
  EXPECT_FALSE(layer.bias.defined());
  EXPECT_EQ(layer.named_parameters().size(), 1u);
  // kaiming_uniform(a = sqrt(5)): U(-1/sqrt(in), 1/sqrt(in)); the extremes come close to the bound.
  const double bound = 1.0 / 16.0;
  EXPECT_LE(max_abs(layer.weight), bound);
  EXPECT_GT(max_abs(layer.weight), 0.99 * bound);
  Linear with_bias(9, 4, gen);
  EXPECT_LE(max_abs(with_bias.bias), 1.0 / 3.0);
  EXPECT_TRUE(test::throws_error([&] { layer(ones({2, 255})); }, "Linear: expected input (..., 256), got [2, 255]"));
  EXPECT_TRUE(
      test::throws_error([&] { Linear bad(0, 3, gen); }, "Linear: in_features and out_features must be positive"));
}

TEST(Embedding, LooksUpRowsAndScattersGradients) {
  Generator gen(3);
  Embedding emb(5, 3, gen, DType::Float64);
  ASSERT_EQ(emb.weight.shape(), (Shape{5, 3}));
  Tensor ids = from_vector<int64_t>({4, 0, 4, 2}, {2, 2});
  Tensor out = emb(ids);
  ASSERT_EQ(out.shape(), (Shape{2, 2, 3}));
  std::vector<double> w = emb.weight.to_vector<double>(), o = out.to_vector<double>();
  const int64_t row[] = {4, 0, 4, 2};
  for (int t = 0; t < 4; ++t)
    for (int j = 0; j < 3; ++j) EXPECT_EQ(o[t * 3 + j], w[row[t] * 3 + j]);
  EXPECT_TRUE(test::passes_gradcheck([&](const TensorList& in) { return emb(ids) * in[0]; },
                                     {test::random({2, 2, 3}, 4, DType::Float64, true)}));
  emb.zero_grad();  // gradcheck's backward passes accumulated into weight too
  sum(out).backward();
  EXPECT_EQ(emb.weight.grad().to_vector<double>(), (std::vector<double>{1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 2, 2, 2}));
  // N(0, 1) init.
  Embedding big(1000, 64, gen);
  double m = mean(big.weight).item<float>(), var = mean(big.weight * big.weight).item<float>() - m * m;
  EXPECT_NEAR(m, 0.0, 0.02);
  EXPECT_NEAR(var, 1.0, 0.03);
}

TEST(CausalConv1d, CheckpointShapesForwardAndGradcheck) {
  Generator gen(5);
  CausalConv1d conv(3, 4, gen, /*bias=*/true, DType::Float64);
  EXPECT_EQ(conv.weight.shape(), (Shape{3, 1, 4}));  // PyTorch's depthwise Conv1d weight
  EXPECT_EQ(conv.bias.shape(), Shape{3});
  EXPECT_LE(max_abs(conv.weight), 0.5);  // bound 1/sqrt(fan_in = 1 * K)
  EXPECT_LE(max_abs(conv.bias), 0.5);

  const int64_t B = 2, C = 3, L = 6, K = 4;
  Tensor x = test::random({B, C, L}, 6, DType::Float64, true);
  Tensor y = conv(x);
  ASSERT_EQ(y.shape(), (Shape{B, C, L}));
  std::vector<double> xv = x.to_vector<double>(), wv = conv.weight.to_vector<double>(),
                      bv = conv.bias.to_vector<double>();
  std::vector<double> expected;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t t = 0; t < L; ++t) {
        double acc = bv[c];
        for (int64_t k = 0; k < K; ++k) {
          int64_t s = t - (K - 1) + k;  // out[t] sees x[t - K + 1 .. t]
          if (s >= 0) acc += wv[c * K + k] * xv[(b * C + c) * L + s];
        }
        expected.push_back(acc);
      }
  EXPECT_TRUE(test::all_close(y, from_vector(expected, {B, C, L}), 1e-12, 1e-12));
  // Gradients reach the (C, 1, K) weight through the (C, K) view.
  EXPECT_TRUE(test::passes_gradcheck([&](const TensorList& in) { return conv(in[0]); }, {x}));
  EXPECT_TRUE(test::passes_gradcheck(
      [&](const TensorList& in) {
        return causal_conv1d(in[0], in[1].view({C, K}), in[2]);
      },
      {x, conv.weight, conv.bias}));
  sum(y).backward();
  EXPECT_EQ(conv.weight.grad().shape(), (Shape{3, 1, 4}));

  CausalConv1d no_bias(3, 2, gen, false);
  EXPECT_EQ(no_bias.named_parameters().size(), 1u);
  EXPECT_TRUE(test::throws_error(
      [&] {
        conv(ones({2, 4, 5}, {.dtype = DType::Float64}));
      },
      "CausalConv1d: expected input (B, 3, L), got [2, 4, 5]"));
}

}  // namespace
}  // namespace mg::nn
