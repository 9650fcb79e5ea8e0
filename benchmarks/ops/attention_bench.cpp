// Causal attention on the CPU, float32: the fused op (ops/cpu/attention.cpp) against the composed
// reference (matmul, mask, softmax, matmul, which forms the (B, H, L, L) scores). Args: B, H, L, Dh.
// items/s = multiply-adds/s of the causal products actually needed: forward 2 * B H L(L+1)/2 Dh
// (q k^T and p v); forward + backward adds 5 more such products with recomputation (s, dp, dv,
// dq, dk; 7 in all). The composed version computes the full L x L squares and masks them.
//   OMP_NUM_THREADS=2 ./attention_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include "mambagrad.h"

namespace {

using namespace mg;

struct Inputs {
  Tensor q, k, v, dout;
};

Inputs make_inputs(const benchmark::State& state, bool requires_grad) {
  const int64_t B = state.range(0), H = state.range(1), L = state.range(2), Dh = state.range(3);
  Generator gen(1);
  auto r = [&](const Shape& shape) { return randn(shape, gen).requires_grad_(requires_grad); };
  return {r({B, H, L, Dh}), r({B, H, L, Dh}), r({B, H, L, Dh}), randn({B, H, L, Dh}, gen)};
}

double causal_macs(const benchmark::State& state) {
  const double B = state.range(0), H = state.range(1), L = state.range(2), Dh = state.range(3);
  return B * H * L * (L + 1) / 2 * Dh;
}

template <bool kFused>
void BM_attention_forward(benchmark::State& state) {
  Inputs in = make_inputs(state, false);
  NoGradGuard no_grad;
  for (auto _ : state) {
    Tensor out = kFused ? scaled_dot_product_attention(in.q, in.k, in.v)
                        : scaled_dot_product_attention_reference(in.q, in.k, in.v);
    benchmark::DoNotOptimize(out.raw_data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * 2 * causal_macs(state)));
}

template <bool kFused>
void BM_attention_forward_backward(benchmark::State& state) {
  Inputs in = make_inputs(state, true);
  for (auto _ : state) {
    Tensor out = kFused ? scaled_dot_product_attention(in.q, in.k, in.v)
                        : scaled_dot_product_attention_reference(in.q, in.k, in.v);
    out.backward(in.dout);
    benchmark::DoNotOptimize(in.q.grad().raw_data());
    in.q.zero_grad(), in.k.zero_grad(), in.v.zero_grad();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * 7 * causal_macs(state)));
}

void shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"B", "H", "L", "Dh"});
  b->Args({32, 4, 128, 28});  // the standard GPT's attention at batch 32 x 128
  b->Args({8, 12, 256, 64});  // GPT-2 small's heads
  b->Args({4, 4, 1024, 28});
  b->Args({1, 4, 4096, 28});
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}
// The fused op also at L = 8192, where the composed version's scores (and their gradient) would
// take 1 GiB each.
void long_shapes(benchmark::internal::Benchmark* b) {
  shapes(b);
  b->Args({1, 4, 8192, 28});
}

BENCHMARK_TEMPLATE(BM_attention_forward, true)->Apply(long_shapes)->Name("attention_forward/fused");
BENCHMARK_TEMPLATE(BM_attention_forward, false)->Apply(shapes)->Name("attention_forward/composed");
BENCHMARK_TEMPLATE(BM_attention_forward_backward, true)->Apply(long_shapes)->Name("attention_forward_backward/fused");
BENCHMARK_TEMPLATE(BM_attention_forward_backward, false)->Apply(shapes)->Name("attention_forward_backward/composed");

}  // namespace

BENCHMARK_MAIN();
