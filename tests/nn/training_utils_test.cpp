// Gradient clipping, the learning-rate schedule, and the init functions' statistics.
#include <cmath>
#include <numbers>

#include "nn/nn.h"
#include "test_util.h"

namespace mg::nn {
namespace {

TEST(ClipGradNorm, GlobalNormOverAllGradients) {
  Tensor a = zeros({2}, {.dtype = DType::Float64}).requires_grad_(true);
  Tensor b = zeros({2, 2}).requires_grad_(true);  // float32 grads mix with float64 ones
  Tensor none = zeros({3}).requires_grad_(true);  // no gradient: skipped
  a.set_grad(from_vector<double>({3, 0}, {2}));
  b.set_grad(from_vector<float>({0, 4, 0, 12}, {2, 2}));
  // sqrt(9 + 16 + 144) = 13
  EXPECT_DOUBLE_EQ(grad_norm({a, b, none}).item<double>(), 13.0);
  Tensor total = clip_grad_norm_({a, b, none}, 1.3);
  EXPECT_EQ(total.dtype(), DType::Float64);
  EXPECT_EQ(total.dim(), 0);
  EXPECT_DOUBLE_EQ(total.item<double>(), 13.0);
  const double scale = 1.3 / (13.0 + 1e-6);
  EXPECT_TRUE(test::all_close(a.grad(), from_vector<double>({3 * scale, 0}, {2}), 1e-15, 0));
  EXPECT_NEAR(grad_norm({a, b}).item<double>(), 1.3, 1e-6);
  // Under the limit: untouched.
  std::vector<float> before = b.grad().to_vector<float>();
  EXPECT_NEAR(clip_grad_norm_({a, b}, 100.0).item<double>(), 1.3, 1e-6);
  EXPECT_EQ(b.grad().to_vector<float>(), before);
  EXPECT_TRUE(test::throws_error([&] { clip_grad_norm_({a}, 0.0); }, "clip_grad_norm_: max_norm must be positive"));
}

TEST(ClipGradNorm, NonFiniteNormIsReported) {
  Tensor a = zeros({2}).requires_grad_(true);
  a.set_grad(from_vector<float>({1, std::nanf("")}, {2}));
  EXPECT_TRUE(std::isnan(clip_grad_norm_({a}, 1.0).item<double>()));
  a.set_grad(from_vector<float>({1, INFINITY}, {2}));
  EXPECT_TRUE(std::isinf(grad_norm({a}).item<double>()));
}

TEST(WarmupCosineSchedule, WarmupPeakAndEnd) {
  WarmupCosineSchedule s{.peak_lr = 2e-3, .min_lr = 2e-4, .warmup_steps = 100, .total_steps = 1100};
  EXPECT_DOUBLE_EQ(s.lr(0), 2e-3 / 100);  // the first step already moves
  EXPECT_DOUBLE_EQ(s.lr(49), 2e-3 * 50 / 100);
  EXPECT_DOUBLE_EQ(s.lr(99), 2e-3);                // warmup ends at the peak
  EXPECT_DOUBLE_EQ(s.lr(100), 2e-3);               // cosine starts at the peak
  EXPECT_DOUBLE_EQ(s.lr(600), (2e-3 + 2e-4) / 2);  // half way down
  EXPECT_NEAR(s.lr(350), 2e-4 + 1.8e-3 * 0.5 * (1 + std::cos(std::numbers::pi / 4)), 1e-15);
  EXPECT_DOUBLE_EQ(s.lr(1100), 2e-4);
  EXPECT_DOUBLE_EQ(s.lr(5000), 2e-4);
  for (int64_t step = 100; step < 1100; ++step) EXPECT_LE(s.lr(step + 1), s.lr(step));  // monotone decay
  WarmupCosineSchedule no_warmup{.peak_lr = 1.0, .min_lr = 0.0, .warmup_steps = 0, .total_steps = 10};
  EXPECT_DOUBLE_EQ(no_warmup.lr(0), 1.0);
  EXPECT_TRUE(test::throws_error([&] { s.lr(-1); }, "step must be non-negative"));
  WarmupCosineSchedule bad{.warmup_steps = 10, .total_steps = 5};
  EXPECT_TRUE(test::throws_error([&] { bad.lr(0); }, "warmup_steps (10) <= total_steps (5)"));
}

// Mean and variance of a tensor's values.
std::pair<double, double> moments(const Tensor& t) {
  std::vector<double> v = t.to_vector<double>();
  double m = 0, s = 0;
  for (double x : v) m += x / v.size();
  for (double x : v) s += (x - m) * (x - m) / v.size();
  return {m, s};
}

TEST(Init, DistributionsAndBounds) {
  Generator gen(0);
  Tensor t = empty({200, 500});  // 100k values
  init::normal_(t, 0.5, 0.02, gen);
  auto [m, v] = moments(t);
  EXPECT_NEAR(m, 0.5, 0.001);
  EXPECT_NEAR(std::sqrt(v), 0.02, 0.0005);

  init::uniform_(t, -3, 1, gen);
  std::tie(m, v) = moments(t);
  EXPECT_NEAR(m, -1.0, 0.02);
  EXPECT_NEAR(v, 16.0 / 12.0, 0.02);  // (high - low)^2 / 12

  // kaiming_uniform_ (a = sqrt(5)) on (out, in, k): bound = 1 / sqrt(in * k); variance bound^2 / 3.
  Tensor w = empty({400, 25, 4}, {.dtype = DType::Float64});
  EXPECT_EQ(init::fan_in_and_fan_out(w), (std::pair<int64_t, int64_t>{100, 1600}));
  init::kaiming_uniform_(w, gen);
  std::tie(m, v) = moments(w);
  const double bound = 0.1;
  double max_abs = 0;
  for (double x : w.to_vector<double>()) max_abs = std::max(max_abs, std::abs(x));
  EXPECT_LE(max_abs, bound);
  EXPECT_GT(max_abs, 0.999 * bound);
  EXPECT_NEAR(v, bound * bound / 3, 0.02 * bound * bound / 3);
  // a = 0: He init for ReLU, bound = sqrt(6 / fan_in).
  init::kaiming_uniform_(w, gen, 0.0);
  std::tie(m, v) = moments(w);
  EXPECT_NEAR(v, 2.0 / 100, 0.02 * 2.0 / 100);

  auto all_equal = [&](double value) {
    for (double x : w.to_vector<double>())
      if (x != value) return false;
    return true;
  };
  init::ones_(w);
  EXPECT_TRUE(all_equal(1.0));
  init::zeros_(w);
  EXPECT_TRUE(all_equal(0.0));
  init::constant_(w, -2.5);
  EXPECT_TRUE(all_equal(-2.5));
}

TEST(Init, InPlaceOnParametersSameSeedSameValues) {
  Tensor p = zeros({3, 4}).requires_grad_(true);
  Tensor handle = p;
  Generator a(42), b(42);
  init::normal_(p, 0, 1, a);  // allowed on a parameter: writes under NoGradGuard
  Tensor q = zeros({3, 4});
  init::normal_(q, 0, 1, b);
  EXPECT_TRUE(test::all_close(handle, q, 0, 0));
  EXPECT_TRUE(p.is_leaf());
  EXPECT_TRUE(test::throws_error([&] { init::kaiming_uniform_(zeros({4}), a); }, "at least 2 dimensions"));
  EXPECT_TRUE(test::throws_error([&] { init::uniform_(zeros({2}, {.dtype = DType::Int64}), 0, 1, a); }, "init.uniform_",
                                 "int64"));
}

}  // namespace
}  // namespace mg::nn
