// matmul and linear against raw Eigen on the same float32 matrices with the same OpenMP threads.
// Items processed = floating-point operations (2 n^3 for an n x n product), so the "items/s"
// column reads as FLOP/s. The framework's numbers include what a user pays: allocating the output
// and building the autograd graph; Eigen writes into a preallocated matrix.
//   OMP_NUM_THREADS=2 ./matmul_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <vector>

// GCC 12 reports false "may be used uninitialized" warnings inside its AVX-512 intrinsic headers
// when Eigen's kernels are instantiated with -march=native.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <Eigen/Core>

#include "mambagrad.h"

namespace {

using mg::Tensor;
using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

Tensor random_matrix(int64_t rows, int64_t cols, uint64_t seed) {
  mg::Generator gen(seed);
  return mg::randn({rows, cols}, gen);
}

// An Eigen copy of a contiguous float32 tensor.
RowMatrix to_eigen(const Tensor& t) {
  return Eigen::Map<const RowMatrix>(t.data<float>(), t.size(0), t.size(1));
}

void set_flops(benchmark::State& state, double flops_per_iteration) {
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * flops_per_iteration));
}

// ---- square products: n x n @ n x n
void BM_matmul_framework(benchmark::State& state) {
  int64_t n = state.range(0);
  Tensor a = random_matrix(n, n, 1), b = random_matrix(n, n, 2);
  for (auto _ : state) {
    Tensor c = mg::matmul(a, b);
    benchmark::DoNotOptimize(c.raw_data());
  }
  set_flops(state, 2.0 * n * n * n);
}

// A transposed operand is read in place (a column-major map), so it should cost the same.
void BM_matmul_framework_transposed_b(benchmark::State& state) {
  int64_t n = state.range(0);
  Tensor a = random_matrix(n, n, 1), b = random_matrix(n, n, 2).transpose(0, 1);
  for (auto _ : state) {
    Tensor c = mg::matmul(a, b);
    benchmark::DoNotOptimize(c.raw_data());
  }
  set_flops(state, 2.0 * n * n * n);
}

void BM_matmul_eigen(benchmark::State& state) {
  int64_t n = state.range(0);
  RowMatrix a = to_eigen(random_matrix(n, n, 1)), b = to_eigen(random_matrix(n, n, 2)), c(n, n);
  for (auto _ : state) {
    c.noalias() = a * b;
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  set_flops(state, 2.0 * n * n * n);
}

// ---- the model's linear layer: x (4096 = 32 x 128 tokens, 128) @ W^T (128 -> 512) + b
constexpr int64_t kRows = 32 * 128, kIn = 128, kOut = 512;
constexpr double kLinearFlops = 2.0 * kRows * kIn * kOut;

void BM_linear_forward_framework(benchmark::State& state) {
  Tensor x = random_matrix(kRows, kIn, 3), w = random_matrix(kOut, kIn, 4), bias = random_matrix(1, kOut, 5).view({kOut});
  for (auto _ : state) {
    Tensor y = mg::linear(x, w, bias);
    benchmark::DoNotOptimize(y.raw_data());
  }
  set_flops(state, kLinearFlops);
}

// Forward, then dx = dy W, dW = dy^T x, db = sum of dy: three GEMMs' worth of work.
void BM_linear_forward_backward_framework(benchmark::State& state) {
  Tensor x = random_matrix(kRows, kIn, 3).requires_grad_(true);
  Tensor w = random_matrix(kOut, kIn, 4).requires_grad_(true);
  Tensor bias = random_matrix(1, kOut, 5).view({kOut}).detach().requires_grad_(true);
  Tensor dy = random_matrix(kRows, kOut, 6);
  for (auto _ : state) {
    mg::linear(x, w, bias).backward(dy);
    benchmark::DoNotOptimize(w.grad().raw_data());
    x.zero_grad();
    w.zero_grad();
    bias.zero_grad();
  }
  set_flops(state, 3 * kLinearFlops);
}

void BM_linear_forward_eigen(benchmark::State& state) {
  RowMatrix x = to_eigen(random_matrix(kRows, kIn, 3)), w = to_eigen(random_matrix(kOut, kIn, 4)), y(kRows, kOut);
  Eigen::RowVectorXf bias = to_eigen(random_matrix(1, kOut, 5));
  for (auto _ : state) {
    y.rowwise() = bias;
    y.noalias() += x * w.transpose();
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_flops(state, kLinearFlops);
}

void BM_linear_forward_backward_eigen(benchmark::State& state) {
  RowMatrix x = to_eigen(random_matrix(kRows, kIn, 3)), w = to_eigen(random_matrix(kOut, kIn, 4)), y(kRows, kOut);
  RowMatrix dy = to_eigen(random_matrix(kRows, kOut, 6)), dx(kRows, kIn), dw(kOut, kIn);
  Eigen::RowVectorXf bias = to_eigen(random_matrix(1, kOut, 5)), db(kOut);
  for (auto _ : state) {
    y.rowwise() = bias;
    y.noalias() += x * w.transpose();
    dx.noalias() = dy * w;
    dw.noalias() = dy.transpose() * x;
    db = dy.colwise().sum();
    benchmark::DoNotOptimize(y.data());
    benchmark::DoNotOptimize(dw.data());
    benchmark::ClobberMemory();
  }
  set_flops(state, 3 * kLinearFlops);
}

// ---- the floor of batch-1 generation: matrix-vector products whose weights do not stay in cache.
// y = W x with W (512, 128) row-major (in_proj's shape), cycling through `count` such matrices
// (256 KiB each), so the working set decides where W is read from: L2 (1 MiB per core here) or
// L3. Items = bytes of W read, so items/s reads as the bandwidth the GEMV achieves.
void BM_gemv_bandwidth_eigen(benchmark::State& state) {
  const int64_t count = state.range(0);
  std::vector<RowMatrix> weights;
  for (int64_t i = 0; i < count; ++i) weights.push_back(to_eigen(random_matrix(512, 128, 10 + i)));
  Eigen::VectorXf x = Eigen::VectorXf::Random(128), y(512);
  for (auto _ : state) {
    for (const RowMatrix& w : weights) {
      y.noalias() = w * x;
      x[0] += y[3] * 1e-9f;  // each product depends on the last: none can be skipped or reordered
    }
  }
  state.SetBytesProcessed(state.iterations() * count * 512 * 128 * static_cast<int64_t>(sizeof(float)));
}

}  // namespace

// Registered size by size, Eigen next to the framework, so that slow drifts of a shared machine
// hit both sides of each comparison alike. Wall time: the work runs on several threads.
int main(int argc, char** argv) {
  auto add = [](const char* name, void (*fn)(benchmark::State&)) {
    return benchmark::RegisterBenchmark(name, fn)->Unit(benchmark::kMicrosecond)->UseRealTime();
  };
  for (int64_t n : {64, 128, 256, 512, 1024}) {
    add("matmul_eigen", BM_matmul_eigen)->Arg(n);
    add("matmul_framework", BM_matmul_framework)->Arg(n);
    add("matmul_framework_transposed_b", BM_matmul_framework_transposed_b)->Arg(n);
  }
  add("linear_4096x128to512_forward_eigen", BM_linear_forward_eigen);
  add("linear_4096x128to512_forward_framework", BM_linear_forward_framework);
  add("linear_4096x128to512_forward_backward_eigen", BM_linear_forward_backward_eigen);
  add("linear_4096x128to512_forward_backward_framework", BM_linear_forward_backward_framework);
  for (int64_t count : {1, 2, 4, 8, 16}) add("gemv_bandwidth_eigen", BM_gemv_bandwidth_eigen)->Arg(count);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
