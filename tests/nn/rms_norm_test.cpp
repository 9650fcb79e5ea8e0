// The fused rms_norm op (ops/rms_norm.h) and the RMSNorm module over it.
#include "nn/rms_norm.h"

#include <cmath>

#include "ops/cpu/parallel.h"
#include "ops/rms_norm.h"
#include "test_util.h"

namespace mg {
namespace {

// Plain-loop reference: x (rows, D) -> x * rsqrt(mean(x^2) + eps) * w.
std::vector<double> rms_norm_reference(const Tensor& x, const Tensor& w, double eps) {
  const int64_t dim = x.size(-1), rows = x.numel() / dim;
  std::vector<double> xv = x.to_vector<double>(), out(xv.size());
  std::vector<double> wv = w.defined() ? w.to_vector<double>() : std::vector<double>(dim, 1.0);
  for (int64_t r = 0; r < rows; ++r) {
    double ms = 0;
    for (int64_t i = 0; i < dim; ++i) ms += xv[r * dim + i] * xv[r * dim + i] / dim;
    for (int64_t i = 0; i < dim; ++i) out[r * dim + i] = xv[r * dim + i] / std::sqrt(ms + eps) * wv[i];
  }
  return out;
}

TEST(RmsNorm, ForwardMatchesReference) {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    Tensor x = test::random({2, 3, 7}, 1, dtype, false, -2, 2);
    Tensor w = test::random({7}, 2, dtype, false, 0.5, 1.5);
    Tensor out = rms_norm(x, w, 1e-5);
    EXPECT_EQ(out.shape(), x.shape());
    EXPECT_EQ(out.dtype(), dtype);
    Tensor expected = from_vector(rms_norm_reference(x, w, 1e-5), x.shape());
    EXPECT_TRUE(test::all_close(out, expected, dtype == DType::Float32 ? 1e-6 : 1e-14, dtype == DType::Float32 ? 1e-6 : 1e-12));
    // No weight: plain normalization.
    Tensor plain = rms_norm(x, Tensor(), 1e-5);
    EXPECT_TRUE(test::all_close(plain, from_vector(rms_norm_reference(x, Tensor(), 1e-5), x.shape()),
                                dtype == DType::Float32 ? 1e-6 : 1e-14, dtype == DType::Float32 ? 1e-6 : 1e-12));
  }
}

TEST(RmsNorm, GradcheckInputAndWeight) {
  Tensor x = test::random({3, 4, 5}, 3, DType::Float64, true, -2, 2);
  Tensor w = test::random({5}, 4, DType::Float64, true, 0.5, 1.5);
  auto f = [](const TensorList& in) { return rms_norm(in[0], in[1], 1e-5); };
  EXPECT_TRUE(test::passes_gradcheck(f, {x, w}));
  // Non-contiguous input: (5, 4) transposed to (4, 5).
  Tensor xt = test::random({5, 4}, 5, DType::Float64, false, -2, 2).transpose(0, 1).detach().requires_grad_(true);
  EXPECT_TRUE(test::passes_gradcheck(f, {xt, w}));
  // Only one of the two requiring grad; and no weight at all; and a large eps.
  Tensor w_const = test::random({5}, 6, DType::Float64, false, 0.5, 1.5);
  EXPECT_TRUE(test::passes_gradcheck(f, {x, w_const}));
  Tensor x_const = test::random({3, 5}, 7, DType::Float64, false, -2, 2);
  EXPECT_TRUE(test::passes_gradcheck(f, {x_const, w}));
  EXPECT_TRUE(test::passes_gradcheck([](const TensorList& in) { return rms_norm(in[0], Tensor(), 0.5); }, {x}));
}

TEST(RmsNorm, WeightGradientIsThreadCountFree) {
  // Enough rows for many dweight chunks; the bits must not depend on the thread count.
  Tensor x = test::random({700, 33}, 8, DType::Float32, false, -2, 2);
  Tensor g = test::random({700, 33}, 9, DType::Float32);
  auto weight_grad = [&](int threads) {
    int previous = get_num_threads();
    set_num_threads(threads);
    Tensor w = ones({33}).requires_grad_(true);
    rms_norm(x, w, 1e-5).backward(g);
    set_num_threads(previous);
    return w.grad().to_vector<float>();
  };
  EXPECT_EQ(weight_grad(1), weight_grad(2));
}

// Plain-loop gradients of sum(g * rms_norm(x, w)): with s = rsqrt(mean(x^2) + eps) per row,
// dx_i = s (w_i g_i - x_i s^2 mean_j(w_j g_j x_j)) and dw_i = sum over rows of g_i x_i s.
std::pair<std::vector<double>, std::vector<double>> rms_norm_backward_reference(const Tensor& x, const Tensor& w,
                                                                                const Tensor& g, double eps) {
  const int64_t dim = x.size(-1), rows = x.numel() / dim;
  std::vector<double> xv = x.to_vector<double>(), wv = w.to_vector<double>(), gv = g.to_vector<double>();
  std::vector<double> dx(xv.size()), dw(dim, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    const double* xr = &xv[r * dim];
    const double* gr = &gv[r * dim];
    double ms = 0, wgx = 0;
    for (int64_t i = 0; i < dim; ++i) ms += xr[i] * xr[i] / dim, wgx += wv[i] * gr[i] * xr[i] / dim;
    const double s = 1 / std::sqrt(ms + eps);
    for (int64_t i = 0; i < dim; ++i) {
      dx[r * dim + i] = s * (wv[i] * gr[i] - xr[i] * s * s * wgx);
      dw[i] += gr[i] * xr[i] * s;
    }
  }
  return {dx, dw};
}

// Values where the kernels split work: dim 37 (the 8-lane sums leave a tail of 5), and enough rows
// for several weight-gradient chunks (70 rows: chunks of 16 and a partial one; 5000 rows: 250
// chunks of 20), against the plain loops, in float64 to float64 tolerances and in float32.
TEST(RmsNorm, BackwardValuesAcrossWeightGradientChunks) {
  for (int64_t rows : {70, 5000}) {
    Tensor x64 = test::random({rows, 37}, 20, DType::Float64, false, -2, 2);
    Tensor w64 = test::random({37}, 21, DType::Float64, false, 0.5, 1.5);
    Tensor g64 = test::random({rows, 37}, 22, DType::Float64);
    auto [dx_ref, dw_ref] = rms_norm_backward_reference(x64, w64, g64, 1e-5);
    Tensor dx_expected = from_vector(dx_ref, {rows, 37}), dw_expected = from_vector(dw_ref, {37});
    for (DType dtype : {DType::Float64, DType::Float32}) {
      const bool f64 = dtype == DType::Float64;
      Tensor x = x64.to(dtype).detach().requires_grad_(true), w = w64.to(dtype).detach().requires_grad_(true);
      Tensor out = rms_norm(x, w, 1e-5);
      EXPECT_TRUE(test::all_close(out, from_vector(rms_norm_reference(x64, w64, 1e-5), {rows, 37}), f64 ? 1e-13 : 1e-6,
                                  f64 ? 1e-12 : 1e-5))
          << rows << " rows " << dtype;
      out.backward(g64.to(dtype));
      EXPECT_TRUE(test::all_close(x.grad(), dx_expected, f64 ? 1e-13 : 1e-5, f64 ? 1e-11 : 1e-4)) << rows << " " << dtype;
      EXPECT_TRUE(test::all_close(w.grad(), dw_expected, f64 ? 1e-10 : 1e-3, f64 ? 1e-11 : 1e-4)) << rows << " " << dtype;
    }
  }
}

TEST(RmsNorm, Errors) {
  Tensor x = ones({2, 4});
  EXPECT_TRUE(
      test::throws_error([&] { rms_norm(x, ones({3}), 1e-5); }, "rms_norm: weight of shape [3]", "input [2, 4]"));
  EXPECT_TRUE(
      test::throws_error([&] { rms_norm(x, ones({4}, {.dtype = DType::Float64}), 1e-5); }, "rms_norm", "float64"));
  EXPECT_TRUE(
      test::throws_error([&] { rms_norm(ones({2}, {.dtype = DType::Int64}), Tensor(), 1e-5); }, "rms_norm", "int64"));
  EXPECT_TRUE(test::throws_error([&] { rms_norm(x, ones({4}), -1.0); }, "rms_norm: eps must be non-negative"));
}

TEST(RMSNormModule, ForwardGradAndInit) {
  nn::RMSNorm norm(6, 1e-6, DType::Float64);
  EXPECT_EQ(norm.weight.to_vector<double>(), std::vector<double>(6, 1.0));
  EXPECT_EQ(norm.named_parameters().front().first, "weight");
  Tensor x = test::random({2, 5, 6}, 10, DType::Float64, true);
  Tensor out = norm(x);
  EXPECT_TRUE(test::all_close(out, from_vector(rms_norm_reference(x, norm.weight, 1e-6), x.shape()), 1e-14, 1e-12));
  EXPECT_TRUE(test::passes_gradcheck([&](const TensorList& in) { return norm(in[0]); }, {x}));
  sum(out).backward();
  EXPECT_TRUE(norm.weight.grad().defined());
  EXPECT_TRUE(test::throws_error([&] { nn::RMSNorm bad(0); }, "RMSNorm: dim must be positive"));
}

}  // namespace
}  // namespace mg
