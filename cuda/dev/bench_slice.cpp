// Timing of the thin CUDA slice against the H200's floors: add (16M float32, plain and broadcast)
// in GB/s and matmul (4096^3 float32) in TFLOP/s, each through the public op and through the
// kernel alone; plus a device-to-device copy as the measured bandwidth ceiling.
// Not part of the CMake build. One-off build against a CUDA build of the library, e.g.:
//   g++ -std=c++20 -O2 -DMG_WITH_CUDA -I. -I/usr/local/cuda/include cuda/dev/bench_slice.cpp \
//       build/h4/libmambagrad.a -L/usr/local/cuda/lib64 -lcudart -lcublas -fopenmp -o build/h4/bench_slice
// Timing: CUDA events around each call on the default stream, 5 warm-up calls, median of 30;
// inputs are random (not zeros).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <vector>

#include "cuda/kernels.h"
#include "mambagrad.h"

using namespace mg;

namespace {

void check(cudaError_t err) {
  if (err != cudaSuccess) {
    std::fprintf(stderr, "CUDA error: %s\n", cudaGetErrorString(err));
    std::exit(1);
  }
}

// Median milliseconds of fn over `reps` timed calls after `warmup` untimed ones.
double median_ms(const std::function<void()>& fn, int warmup = 5, int reps = 30) {
  for (int i = 0; i < warmup; ++i) fn();
  check(cudaDeviceSynchronize());
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start));
  check(cudaEventCreate(&stop));
  std::vector<double> times;
  for (int i = 0; i < reps; ++i) {
    check(cudaEventRecord(start));
    fn();
    check(cudaEventRecord(stop));
    check(cudaEventSynchronize(stop));
    float ms = 0;
    check(cudaEventElapsedTime(&ms, start, stop));
    times.push_back(ms);
  }
  check(cudaGetLastError());
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

void report_bandwidth(const char* name, double bytes, double ms, double ceiling_gbs) {
  double gbs = bytes / (ms * 1e-3) / 1e9;
  std::printf("%-44s %9.3f ms %8.0f GB/s  %5.1f%% of 4800 (datasheet)  %5.1f%% of %.0f (measured copy)\n", name, ms, gbs,
              100 * gbs / 4800, 100 * gbs / ceiling_gbs, ceiling_gbs);
}

}  // namespace

int main() {
  if (!cuda_is_available()) {
    std::printf("no CUDA GPU: nothing to time\n");
    return 0;
  }
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs, %.0f GiB\n", prop.name, prop.multiProcessorCount, prop.totalGlobalMem / 1073741824.0);
  const Device gpu = Device::cuda(0);
  Generator gen(1);

  // The ceiling: a 1 GiB device-to-device copy, counting bytes read plus bytes written.
  size_t copy_bytes = size_t{1} << 30;
  void *src = nullptr, *dst = nullptr;
  check(cudaMalloc(&src, copy_bytes));
  check(cudaMalloc(&dst, copy_bytes));
  check(cudaMemset(src, 1, copy_bytes));
  double copy_ms = median_ms([&] { check(cudaMemcpy(dst, src, copy_bytes, cudaMemcpyDeviceToDevice)); });
  double ceiling = 2.0 * copy_bytes / (copy_ms * 1e-3) / 1e9;
  std::printf("%-44s %9.3f ms %8.0f GB/s  (the measured ceiling)\n", "cudaMemcpy D2D 1 GiB", copy_ms, ceiling);
  check(cudaFree(src));
  check(cudaFree(dst));

  // add: 4096 x 4096 float32 = 16M elements.
  const int64_t n = 4096;
  Tensor a = randn({n, n}, gen).to(gpu), b = randn({n, n}, gen).to(gpu);
  Tensor row = randn({n}, gen).to(gpu), col = randn({n, 1}, gen).to(gpu);
  Tensor out = empty({n, n}, {.device = gpu});
  double elems = static_cast<double>(n * n), f32 = 4;
  report_bandwidth("add (4096,4096)+(4096,4096) op", 3 * elems * f32, median_ms([&] { add(a, b); }), ceiling);
  report_bandwidth("add (4096,4096)+(4096,4096) kernel", 3 * elems * f32,
                   median_ms([&] { cuda::binary(BinaryOp::Add, out, a, b); }), ceiling);
  report_bandwidth("add (4096,4096)+(4096,) op", 2 * elems * f32 + n * f32, median_ms([&] { add(a, row); }), ceiling);
  report_bandwidth("add (4096,4096)+(4096,) kernel", 2 * elems * f32 + n * f32,
                   median_ms([&] { cuda::binary(BinaryOp::Add, out, a, row); }), ceiling);
  report_bandwidth("add (4096,4096)+(4096,1) kernel", 2 * elems * f32 + n * f32,
                   median_ms([&] { cuda::binary(BinaryOp::Add, out, a, col); }), ceiling);
  report_bandwidth("add (4096,4096)+(4096,4096)^T kernel", 3 * elems * f32,
                   median_ms([&] { cuda::binary(BinaryOp::Add, out, a, b.transpose(0, 1)); }), ceiling);
  Tensor sums = empty({1, n}, {.device = gpu}), total = empty({1, 1}, {.device = gpu});
  report_bandwidth("sum_to (4096,4096)->(1,4096) kernel", elems * f32, median_ms([&] { cuda::sum_to(sums, a); }),
                   ceiling);
  report_bandwidth("sum_to (4096,4096)->(1,1) kernel", elems * f32, median_ms([&] { cuda::sum_to(total, a); }),
                   ceiling);

  // matmul: 4096^3 float32 (plain FP32, no TF32) and float64.
  for (DType dtype : {DType::Float32, DType::Float64}) {
    Tensor x = randn({n, n}, gen, {.dtype = dtype}), y = randn({n, n}, gen, {.dtype = dtype});
    Tensor xg = x.to(gpu), yg = y.to(gpu), zg = empty({n, n}, {.dtype = dtype, .device = gpu});
    double flops = 2.0 * n * n * n;
    double op_ms = median_ms([&] { matmul(xg, yg); }, 3, 20);
    double kernel_ms = median_ms([&] {
      cuda::gemm(dtype, false, false, n, n, n, xg.raw_data(), n, 0, yg.raw_data(), n, 0, zg.raw_data(), 0, 1, 0);
    }, 3, 20);
    double floor_tflops = 67;  // H100/H200 SXM datasheet: FP32 non-tensor 67, FP64 tensor core 67
    for (auto [what, ms] : {std::pair{"op", op_ms}, std::pair{"cuda::gemm", kernel_ms}}) {
      double tflops = flops / (ms * 1e-3) / 1e12;
      std::printf("matmul 4096^3 %-7s %-10s %19.3f ms %8.1f TFLOP/s  %5.1f%% of %.0f (datasheet)\n", dtype_name(dtype),
                  what, ms, tflops, 100 * tflops / floor_tflops, floor_tflops);
    }
    // Spot check 8 entries of z against float64 dot products on the host.
    Tensor z = matmul(xg, yg).to(Device::cpu());
    std::vector<double> xv = x.to_vector<double>(), yv = y.to_vector<double>(), zv = z.to_vector<double>();
    double worst = 0;
    for (int s = 0; s < 8; ++s) {
      int64_t i = gen.next_int(0, n), j = gen.next_int(0, n);
      double ref = 0;
      for (int64_t k = 0; k < n; ++k) ref += xv[i * n + k] * yv[k * n + j];
      worst = std::max(worst, std::abs(zv[i * n + j] - ref) / std::sqrt(static_cast<double>(n)));
    }
    std::printf("  spot check: max |z - ref| / sqrt(k) over 8 entries = %.2e\n", worst);
  }
  return 0;
}
