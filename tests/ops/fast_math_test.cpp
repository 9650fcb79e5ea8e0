// The fast_math.h functions (exp, log, log1p, tanh, sigmoid, silu, softplus) against the C library.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "ops/cpu/fast_math.h"

namespace mg::cpu {
namespace {

constexpr float kInfF = std::numeric_limits<float>::infinity();
constexpr double kInf = std::numeric_limits<double>::infinity();

// Largest relative error of f against ref over `points` evenly spaced x in [lo, hi].
template <class T, class F, class Ref>
double max_relative_error(F f, Ref ref, double lo, double hi, int64_t points) {
  double worst = 0;
  for (int64_t i = 0; i <= points; ++i) {
    T x = static_cast<T>(lo + (hi - lo) * static_cast<double>(i) / static_cast<double>(points));
    long double expected = ref(static_cast<long double>(x));
    if (expected == 0) continue;
    worst = std::max(worst, static_cast<double>(std::fabs((f(x) - expected) / expected)));
  }
  return worst;
}

TEST(FastMath, ExpFloatWithinTwoUlpOverItsRange) {
  auto ref = [](long double x) { return std::exp(x); };
  EXPECT_LE(max_relative_error<float>([](float x) { return fast_exp(x); }, ref, -87.0, 88.0, 3'000'000), 2e-7);
  EXPECT_LE(max_relative_error<float>([](float x) { return fast_exp(x); }, ref, -1.0, 1.0, 1'000'000), 2e-7);
}

TEST(FastMath, ExpDoubleWithinTwoUlpOverItsRange) {
  auto ref = [](long double x) { return std::exp(x); };
  EXPECT_LE(max_relative_error<double>([](double x) { return fast_exp(x); }, ref, -708.0, 709.0, 3'000'000), 1e-15);
  EXPECT_LE(max_relative_error<double>([](double x) { return fast_exp(x); }, ref, -1.0, 1.0, 1'000'000), 5e-16);
}

TEST(FastMath, ExpEdgeCases) {
  EXPECT_EQ(fast_exp(0.0f), 1.0f);
  EXPECT_EQ(fast_exp(0.0), 1.0);
  EXPECT_EQ(fast_exp(kInfF), kInfF);
  EXPECT_EQ(fast_exp(-kInfF), 0.0f);
  EXPECT_EQ(fast_exp(kInf), kInf);
  EXPECT_EQ(fast_exp(-kInf), 0.0);
  EXPECT_TRUE(std::isnan(fast_exp(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_TRUE(std::isnan(fast_exp(std::numeric_limits<double>::quiet_NaN())));
  // Overflow saturates to inf right where std::exp does; large negatives give exactly 0.
  EXPECT_TRUE(std::isfinite(fast_exp(88.72f)));
  EXPECT_EQ(fast_exp(88.73f), kInfF);
  EXPECT_EQ(fast_exp(1000.0f), kInfF);
  EXPECT_TRUE(std::isfinite(fast_exp(709.78)));
  EXPECT_EQ(fast_exp(709.79), kInf);
  EXPECT_EQ(fast_exp(-200.0f), 0.0f);
  EXPECT_EQ(fast_exp(-1e30f), 0.0f);
  EXPECT_EQ(fast_exp(-800.0), 0.0);
  // Subnormal results: within one unit of the smallest subnormal of std::exp's.
  for (float x : {-90.0f, -95.5f, -100.0f, -103.0f})
    EXPECT_NEAR(fast_exp(x), std::exp(x), std::numeric_limits<float>::denorm_min()) << x;
  for (double x : {-710.0, -730.5, -744.0})
    EXPECT_NEAR(fast_exp(x), std::exp(x), std::numeric_limits<double>::denorm_min()) << x;
}

// Largest relative error of f against ref over `points` log-spaced x in [lo, hi] (lo > 0).
template <class T, class F, class Ref>
double max_relative_error_log_spaced(F f, Ref ref, double lo, double hi, int64_t points) {
  double a = std::log(lo), b = std::log(hi);
  return max_relative_error<T>([&](T t) { return f(static_cast<T>(std::exp(static_cast<double>(t)))); },
                               [&](long double t) { return ref(static_cast<T>(std::exp(static_cast<double>(t)))); },
                               a, b, points);
}

TEST(FastMath, LogWithinTwoUlp) {
  auto ref = [](long double x) { return std::log(x); };
  EXPECT_LE(max_relative_error_log_spaced<float>([](float x) { return fast_log(x); }, ref, 1e-44, 3e38, 2'000'000),
            2e-7);
  EXPECT_LE(max_relative_error_log_spaced<double>([](double x) { return fast_log(x); }, ref, 1e-320, 1e308,
                                                  2'000'000),
            5e-16);
  // Near 1, where log(x) is small and a careless f = x - 1 step would lose it.
  EXPECT_LE(max_relative_error<float>([](float x) { return fast_log(x); }, ref, 0.5, 2.0, 1'000'000), 2e-7);
  EXPECT_LE(max_relative_error<double>([](double x) { return fast_log(x); }, ref, 0.5, 2.0, 1'000'000), 5e-16);
  EXPECT_EQ(fast_log(1.0f), 0.0f);
  EXPECT_EQ(fast_log(0.0), -kInf);
  EXPECT_EQ(fast_log(kInfF), kInfF);
  EXPECT_TRUE(std::isnan(fast_log(-1.0f)));
  EXPECT_TRUE(std::isnan(fast_log(-kInf)));
  EXPECT_TRUE(std::isnan(fast_log(std::numeric_limits<double>::quiet_NaN())));
  EXPECT_NEAR(fast_log(std::numeric_limits<float>::denorm_min()), std::log(std::numeric_limits<float>::denorm_min()),
              1e-5);
}

TEST(FastMath, Log1pKeepsTinyArguments) {
  auto ref = [](long double x) { return std::log1p(x); };
  EXPECT_LE(max_relative_error_log_spaced<float>([](float x) { return fast_log1p(x); }, ref, 1e-30, 1e30, 1'000'000),
            2e-7);
  EXPECT_LE(max_relative_error_log_spaced<double>([](double x) { return fast_log1p(x); }, ref, 1e-300, 1e300,
                                                  1'000'000),
            5e-16);
  EXPECT_LE(max_relative_error<double>([](double x) { return fast_log1p(x); }, ref, -0.999, 1.0, 1'000'000), 5e-16);
  EXPECT_LE(max_relative_error<float>([](float x) { return fast_log1p(x); }, ref, -0.999, 1.0, 1'000'000), 2e-7);
  EXPECT_EQ(fast_log1p(1e-30f), 1e-30f);
  EXPECT_EQ(fast_log1p(-1.0), -kInf);
  EXPECT_EQ(fast_log1p(kInf), kInf);
  EXPECT_TRUE(std::isnan(fast_log1p(-2.0f)));
}

TEST(FastMath, TanhMatchesStdTanh) {
  auto ref = [](long double x) { return std::tanh(x); };
  EXPECT_LE(max_relative_error<float>([](float x) { return fast_tanh(x); }, ref, -12.0, 12.0, 1'000'000), 3e-7);
  EXPECT_LE(max_relative_error<double>([](double x) { return fast_tanh(x); }, ref, -25.0, 25.0, 1'000'000), 5e-16);
  EXPECT_LE(max_relative_error<float>([](float x) { return fast_tanh(x); }, ref, -1e-3, 1e-3, 10'000), 2e-7);
  EXPECT_TRUE(std::signbit(fast_tanh(-0.0f)) && std::signbit(fast_tanh(-0.0)));
  EXPECT_EQ(fast_tanh(kInfF), 1.0f);
  EXPECT_EQ(fast_tanh(-kInf), -1.0);
  EXPECT_TRUE(std::isnan(fast_tanh(std::numeric_limits<float>::quiet_NaN())));
}

TEST(FastMath, SigmoidSiluSoftplus) {
  auto sigmoid = [](long double x) { return 1 / (1 + std::exp(-x)); };
  EXPECT_LE(max_relative_error<double>([](double x) { return fast_sigmoid(x); }, sigmoid, -700.0, 700.0, 500'000),
            1e-15);
  EXPECT_LE(max_relative_error<float>([](float x) { return fast_sigmoid(x); }, sigmoid, -80.0, 80.0, 500'000), 3e-7);
  auto silu = [](long double x) { return x / (1 + std::exp(-x)); };
  EXPECT_LE(max_relative_error<double>([](double x) { return fast_silu(x); }, silu, -700.0, 700.0, 500'000), 1e-15);
  EXPECT_EQ(fast_sigmoid(-kInf), 0.0);
  EXPECT_EQ(fast_sigmoid(kInfF), 1.0f);
  EXPECT_EQ(fast_silu(kInf), kInf);

  auto softplus = [](long double x) { return std::log1p(std::exp(x)); };
  EXPECT_LE(max_relative_error<double>([](double x) { return fast_softplus(x); }, softplus, -700.0, 20.0, 500'000),
            1e-15);
  EXPECT_LE(max_relative_error<float>([](float x) { return fast_softplus(x); }, softplus, -80.0, 20.0, 500'000), 3e-7);
  EXPECT_EQ(fast_softplus(20.5), 20.5);  // above the threshold: x itself
  EXPECT_EQ(fast_softplus(kInf), kInf);
  EXPECT_EQ(fast_softplus(-kInf), 0.0);
  // beta scales the input and the threshold applies to beta * x (PyTorch's rule).
  EXPECT_EQ(fast_softplus(6.0, 2.0, 10.0), 6.0);
  EXPECT_DOUBLE_EQ(fast_softplus(4.0, 2.0, 10.0), std::log1p(std::exp(8.0)) / 2.0);
}

}  // namespace
}  // namespace mg::cpu
