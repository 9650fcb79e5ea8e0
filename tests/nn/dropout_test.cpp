// The dropout op (ops/dropout.h) and the Dropout module.
#include "nn/dropout.h"

#include "ops/dropout.h"
#include "test_util.h"

namespace mg {
namespace {

TEST(DropoutOp, MaskStatisticsAndScaling) {
  Generator gen(1);
  Tensor x = ones({100000}, {.dtype = DType::Float64});
  Tensor out = dropout(x, 0.3, gen);
  int64_t kept = 0;
  for (double v : out.to_vector<double>()) {
    if (v != 0) {
      EXPECT_DOUBLE_EQ(v, 1.0 / 0.7);
      ++kept;
    }
  }
  // 100000 draws: the kept fraction is 0.7 within 5 standard deviations (~0.0072).
  EXPECT_NEAR(kept / 100000.0, 0.7, 0.0073);
  EXPECT_NEAR(mean(out).item<double>(), 1.0, 0.011);  // inverted dropout keeps the mean
}

TEST(DropoutOp, SameSeedSameMaskAndIdentityCases) {
  Tensor x = test::random({4, 5}, 2);
  Generator a(7), b(7);
  EXPECT_TRUE(test::all_close(dropout(x, 0.5, a), dropout(x, 0.5, b), 0, 0));
  Generator gen(3);
  EXPECT_TRUE(dropout(x, 0.5, gen, /*training=*/false).is_same(x));
  EXPECT_TRUE(dropout(x, 0.0, gen).is_same(x));
  EXPECT_TRUE(test::all_close(dropout(x, 1.0, gen), zeros({4, 5}, {.dtype = DType::Float64}), 0, 0));
  EXPECT_TRUE(test::throws_error([&] { dropout(x, 1.5, gen); }, "dropout: probability must be in [0, 1], got 1.5"));
}

TEST(DropoutOp, Gradcheck) {
  Tensor x = test::random({3, 4}, 4, DType::Float64, true);
  // A fresh generator per call: gradcheck evaluates fn many times and needs the same mask.
  auto f = [](const TensorList& in) {
    Generator gen(11);
    return dropout(in[0], 0.4, gen);
  };
  EXPECT_TRUE(test::passes_gradcheck(f, {x}));
  Tensor xt = test::random({4, 3}, 5, DType::Float64).transpose(0, 1).detach().requires_grad_(true);
  EXPECT_TRUE(test::passes_gradcheck(f, {xt}));
  // The gradient is exactly the mask.
  Tensor out = f({x});
  sum(out).backward();
  EXPECT_TRUE(test::all_close(x.grad(), out / x, 1e-12, 1e-12));
}

TEST(DropoutModule, TrainAndEval) {
  Generator gen(5);
  nn::Dropout drop(0.5, gen);
  Tensor x = ones({1000});
  Tensor y = drop(x);
  EXPECT_FALSE(y.is_same(x));
  std::vector<float> values = y.to_vector<float>();
  const auto zeros_count = std::count(values.begin(), values.end(), 0.f);
  EXPECT_GT(zeros_count, 400);
  EXPECT_LT(zeros_count, 600);
  drop.eval();
  EXPECT_TRUE(drop(x).is_same(x));
  EXPECT_TRUE(drop.named_parameters().empty());
  EXPECT_TRUE(test::throws_error([&] { nn::Dropout bad(-0.1); }, "Dropout: probability must be in [0, 1]"));
}

}  // namespace
}  // namespace mg
