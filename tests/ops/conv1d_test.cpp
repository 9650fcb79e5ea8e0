#include "test_util.h"

namespace mg {
namespace {

// out[b, c, t] = bias[c] + sum_k weight[c, k] * x[b, c, t - (K - 1) + k], x = 0 before t = 0.
Tensor reference_conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  int64_t B = x.size(0), C = x.size(1), L = x.size(2), K = weight.size(1);
  std::vector<double> xv = x.to_vector<double>(), wv = weight.to_vector<double>();
  std::vector<double> bv = bias.defined() ? bias.to_vector<double>() : std::vector<double>(C, 0.0);
  std::vector<double> out(B * C * L);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t t = 0; t < L; ++t) {
        double acc = bv[c];
        for (int64_t k = 0; k < K; ++k) {
          int64_t s = t - (K - 1) + k;
          if (s >= 0) acc += wv[c * K + k] * xv[(b * C + c) * L + s];
        }
        out[(b * C + c) * L + t] = acc;
      }
  return from_vector(out, x.shape());
}

struct ConvCase {
  const char* name;
  int64_t B, C, L, K;
  friend void PrintTo(const ConvCase& c, std::ostream* os) { *os << c.name; }
};

const ConvCase kCases[] = {
    {"K4", 2, 3, 5, 4},         {"L_less_than_K", 1, 2, 3, 4}, {"L1", 2, 3, 1, 4},
    {"K1", 2, 3, 7, 1},         {"K3_odd_sizes", 3, 5, 17, 3}, {"threaded", 4, 37, 129, 4},
};

class CausalConv1d : public ::testing::TestWithParam<ConvCase> {};

TEST_P(CausalConv1d, MatchesReference) {
  const ConvCase& c = GetParam();
  Tensor x = test::random({c.B, c.C, c.L}, 1), w = test::random({c.C, c.K}, 2), bias = test::random({c.C}, 3);
  EXPECT_TRUE(test::all_close(causal_conv1d(x, w, bias), reference_conv1d(x, w, bias), 1e-12, 1e-12));
  EXPECT_TRUE(test::all_close(causal_conv1d(x, w), reference_conv1d(x, w, Tensor()), 1e-12, 1e-12));
  Tensor out32 = causal_conv1d(x.to(DType::Float32), w.to(DType::Float32), bias.to(DType::Float32));
  EXPECT_EQ(out32.dtype(), DType::Float32);
  EXPECT_TRUE(test::all_close(out32, reference_conv1d(x, w, bias), 1e-5, 1e-5));
}

TEST_P(CausalConv1d, Gradcheck) {
  const ConvCase& c = GetParam();
  if (c.B * c.C * c.L > 1000) GTEST_SKIP() << "gradcheck runs on the small cases";
  Tensor x = test::random({c.B, c.C, c.L}, 4, DType::Float64, true);
  Tensor w = test::random({c.C, c.K}, 5, DType::Float64, true), bias = test::random({c.C}, 6, DType::Float64, true);
  // The model's layout: x is a transposed view of (B, L, C) activations.
  Tensor xt = test::random({c.B, c.L, c.C}, 7).transpose(1, 2).detach().requires_grad_(true);
  auto f = [](const TensorList& in) { return causal_conv1d(in[0], in[1], in[2]); };
  EXPECT_TRUE(test::passes_gradcheck(f, {x, w, bias}));
  EXPECT_TRUE(test::passes_gradcheck(f, {xt, w, bias}));
  EXPECT_TRUE(test::passes_gradcheck(f, {x, w.detach(), Tensor()}));  // x only, no bias
  EXPECT_TRUE(test::passes_gradcheck(f, {x.detach(), w, bias}));      // weights only
}

INSTANTIATE_TEST_SUITE_P(Sizes, CausalConv1d, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(CausalConv1dThreaded, GradientsMatchReferenceFormulas) {
  // Larger than gradcheck can afford: dx, dweight and dbias against their sums written out.
  int64_t B = 3, C = 19, L = 70, K = 4;
  Tensor x = test::random({B, C, L}, 8, DType::Float64, true), w = test::random({C, K}, 9, DType::Float64, true);
  Tensor bias = test::random({C}, 10, DType::Float64, true), g = test::random({B, C, L}, 11);
  causal_conv1d(x, w, bias).backward(g);
  std::vector<double> xv = x.to_vector<double>(), wv = w.to_vector<double>(), gv = g.to_vector<double>();
  std::vector<double> dx(B * C * L, 0.0), dw(C * K, 0.0), db(C, 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t t = 0; t < L; ++t) {
        double gt = gv[(b * C + c) * L + t];
        db[c] += gt;
        for (int64_t k = 0; k < K; ++k) {
          int64_t s = t - (K - 1) + k;
          if (s < 0) continue;
          dx[(b * C + c) * L + s] += wv[c * K + k] * gt;
          dw[c * K + k] += xv[(b * C + c) * L + s] * gt;
        }
      }
  EXPECT_TRUE(test::all_close(x.grad(), from_vector(dx, {B, C, L}), 1e-12, 1e-12));
  EXPECT_TRUE(test::all_close(w.grad(), from_vector(dw, {C, K}), 1e-12, 1e-12));
  EXPECT_TRUE(test::all_close(bias.grad(), from_vector(db, {C}), 1e-12, 1e-12));
}

TEST(CausalConv1dCausality, ChangingXAtTNeverChangesEarlierOutputs) {
  int64_t B = 2, C = 3, L = 10, K = 4;
  Tensor x = test::random({B, C, L}, 12), w = test::random({C, K}, 13, DType::Float64, false, 0.5, 1.0);
  std::vector<double> base = causal_conv1d(x, w).to_vector<double>();
  for (int64_t t = 0; t < L; ++t) {
    Tensor changed = x.clone();
    for (int64_t row = 0; row < B * C; ++row) changed.data<double>()[row * L + t] += 1.0;
    std::vector<double> out = causal_conv1d(changed, w).to_vector<double>();
    for (int64_t row = 0; row < B * C; ++row) {
      for (int64_t s = 0; s < t; ++s) EXPECT_EQ(out[row * L + s], base[row * L + s]) << "t " << t << " s " << s;
      EXPECT_NE(out[row * L + t], base[row * L + t]) << "x[" << t << "] must reach out[" << t << "]";
    }
  }
}

TEST(CausalConv1dErrors, NameTheOpAndShapes) {
  EXPECT_TRUE(test::throws_error([] { causal_conv1d(ones({3, 5}), ones({3, 4})); }, "causal_conv1d: expected x (B, C, L)",
                                 "[3, 5]"));
  EXPECT_TRUE(test::throws_error([] { causal_conv1d(ones({2, 3, 5}), ones({4, 4})); },
                                 "causal_conv1d: expected weight (C, K) with C = 3", "got shape [4, 4]"));
  EXPECT_TRUE(test::throws_error([] { causal_conv1d(ones({2, 3, 5}), ones({3, 0})); }, "causal_conv1d", "K >= 1"));
  EXPECT_TRUE(test::throws_error([] { causal_conv1d(ones({2, 3, 5}), ones({3, 4}), ones({4})); },
                                 "causal_conv1d: expected bias (3)", "[4]"));
  EXPECT_TRUE(test::throws_error([] { causal_conv1d(ones({2, 3, 5}), ones({3, 4}, {.dtype = DType::Float64})); },
                                 "causal_conv1d", "float64"));
}

}  // namespace
}  // namespace mg
