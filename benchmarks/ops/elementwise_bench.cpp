// Elementwise add and mul, float32, 4K to 16M elements: contiguous (a + b, same shape) and
// broadcast-row (a (rows, 1024) + b (1024)). Bytes processed = bytes read + bytes written, so the
// "bytes/s" column compares directly with the floor measured here the same way:
//   copy_floor   dst = src with OpenMP, 2 threads: the machine's streaming bandwidth
//   add_raw      out = a + b as a plain OpenMP loop into a preallocated buffer
// The framework's add allocates its output every call (fresh pages for big tensors: page faults);
// add_inplace shows the same loop without the allocation. transpose_copy: see its comment.
//   OMP_NUM_THREADS=2 ./elementwise_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cstring>
#include <vector>

#include "mambagrad.h"
#include "ops/cpu/parallel.h"

namespace {

using mg::Tensor;
constexpr int64_t kRowLength = 1024;  // broadcast-row cases: b has this many elements

Tensor random_vector(const mg::Shape& shape, uint64_t seed) {
  mg::Generator gen(seed);
  return mg::randn(shape, gen);
}

void set_bytes(benchmark::State& state, int64_t floats_per_iteration) {
  state.SetBytesProcessed(state.iterations() * floats_per_iteration * static_cast<int64_t>(sizeof(float)));
}

template <Tensor (*Op)(const Tensor&, const Tensor&)>
void BM_contiguous(benchmark::State& state) {
  int64_t n = state.range(0);
  Tensor a = random_vector({n}, 1), b = random_vector({n}, 2);
  for (auto _ : state) {
    Tensor c = Op(a, b);
    benchmark::DoNotOptimize(c.raw_data());
  }
  set_bytes(state, 3 * n);  // read a, b; write out
}

template <Tensor (*Op)(const Tensor&, const Tensor&)>
void BM_broadcast_row(benchmark::State& state) {
  int64_t n = state.range(0);
  Tensor a = random_vector({n / kRowLength, kRowLength}, 1), b = random_vector({kRowLength}, 2);
  for (auto _ : state) {
    Tensor c = Op(a, b);
    benchmark::DoNotOptimize(c.raw_data());
  }
  set_bytes(state, 2 * n + kRowLength);  // read a and the row b once; write out
}

Tensor add_op(const Tensor& a, const Tensor& b) { return mg::add(a, b); }
Tensor mul_op(const Tensor& a, const Tensor& b) { return mg::mul(a, b); }

void BM_add_inplace(benchmark::State& state) {
  int64_t n = state.range(0);
  Tensor a = random_vector({n}, 1), b = random_vector({n}, 2);
  for (auto _ : state) {
    mg::add_inplace(a, b, 1e-9);
    benchmark::DoNotOptimize(a.raw_data());
  }
  set_bytes(state, 3 * n);  // read a, b; write a
}

// ---- the floors: plain OpenMP loops over preallocated buffers, chunked like the framework's.
constexpr int64_t kChunk = 1 << 15;

void BM_add_raw(benchmark::State& state) {
  int64_t n = state.range(0);
  std::vector<float> a_buffer(n, 1.0f), b_buffer(n, 2.0f), c_buffer(n, 0.0f);
  const float* a = a_buffer.data();
  const float* b = b_buffer.data();
  float* c = c_buffer.data();
  for (auto _ : state) {
    mg::parallel_for(0, n, kChunk, [=](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) c[i] = a[i] + b[i];
    });
    benchmark::DoNotOptimize(c);
    benchmark::ClobberMemory();
  }
  set_bytes(state, 3 * n);
}

void BM_copy_floor(benchmark::State& state) {
  int64_t n = state.range(0);
  std::vector<float> src(n, 1.0f), dst(n, 0.0f);
  for (auto _ : state) {
    mg::parallel_for(0, n, kChunk, [&](int64_t begin, int64_t end) {
      std::memcpy(dst.data() + begin, src.data() + begin, (end - begin) * sizeof(float));
    });
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, 2 * n);  // read src; write dst
}

// The layout change a transpose makes: copy_inplace(dst, x.transpose(1, 2)) into a preallocated
// contiguous dst, x (32, L, C) contiguous: what the mixer does with (B, L, 2 d_inner) in_proj
// outputs. Args: L, C. Compare with copy_floor at the same size (4M floats for (32, 128, 1024)).
void BM_transpose_copy(benchmark::State& state) {
  const int64_t L = state.range(0), C = state.range(1);
  Tensor x = random_vector({32, L, C}, 3), view = x.transpose(1, 2);
  Tensor dst = mg::empty(view.shape());
  for (auto _ : state) {
    mg::copy_inplace(dst, view);
    benchmark::DoNotOptimize(dst.raw_data());
  }
  set_bytes(state, 2 * x.numel());
}

}  // namespace

BENCHMARK(BM_transpose_copy)->Args({128, 256})->Args({128, 512})->Args({256, 128})->Args({2048, 512})
    ->Unit(benchmark::kMicrosecond)->UseRealTime();

#define MG_ELEMENTWISE_BENCH(fn) \
  BENCHMARK(fn)->RangeMultiplier(8)->Range(1 << 12, 1 << 24)->Unit(benchmark::kMicrosecond)->UseRealTime()
MG_ELEMENTWISE_BENCH(BM_contiguous<add_op>)->Name("add_contiguous");
MG_ELEMENTWISE_BENCH(BM_contiguous<mul_op>)->Name("mul_contiguous");
MG_ELEMENTWISE_BENCH(BM_broadcast_row<add_op>)->Name("add_broadcast_row");
MG_ELEMENTWISE_BENCH(BM_broadcast_row<mul_op>)->Name("mul_broadcast_row");
MG_ELEMENTWISE_BENCH(BM_add_inplace)->Name("add_inplace");
MG_ELEMENTWISE_BENCH(BM_add_raw)->Name("add_raw_loop");
MG_ELEMENTWISE_BENCH(BM_copy_floor)->Name("copy_floor");

BENCHMARK_MAIN();
