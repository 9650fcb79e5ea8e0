// The selective scan on a GPU at the sizes of the fused-scan issue (float32, B = 16, D = 1536,
// N = 16, with z, D_skip, delta_bias and softplus; L = 512, 2048, 8192), forward alone and forward
// + backward, timed with CUDA events. bytes/s counts the floor's bytes: u, delta, z, B, C read
// once and y written once (forward); for forward + backward also dy read and du, ddelta, dz, dB,
// dC written; x_floor is the time's multiple of those bytes at the H200's 4.26 TB/s. The official
// kernel's times on the same card are in benchmarks/RESULTS.md.
// `small_batch` keeps B L = 32,768 tokens and shrinks the batch to 1: the parallelism left when
// a long sequence comes alone (each recurrence runs along L; only B and D spread over the GPU,
// unless the kernels split L into segments). Its third argument fixes the number of segments
// (cuda::ScopedScanSegments: 1 never splits; 0 is the kernels' own choice).
//   ./selective_scan_gpu_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include "cuda/runtime.h"
#include "cuda/scan_segments.h"
#include "mambagrad.h"

namespace {

using namespace mg;

struct ScanInputsOnGpu {
  Tensor u, delta, A, Bm, Cm, D, z, delta_bias;
};

ScanInputsOnGpu make_inputs(int64_t B, int64_t D, int64_t L, int64_t N, bool grad) {
  Generator gen(1);
  const Device gpu = Device::cuda(0);
  auto r = [&](Shape s, double lo, double hi) {
    Tensor t = uniform(s, lo, hi, gen).to(gpu);
    if (grad) t.requires_grad_(true);
    return t;
  };
  return {r({B, D, L}, -1, 1), r({B, D, L}, -3, 0), r({D, N}, -2, -0.5), r({B, N, L}, -1, 1), r({B, N, L}, -1, 1),
          r({D}, -1, 1),       r({B, D, L}, -1, 1), r({D}, -4, -2)};
}

SelectiveScanResult scan(const ScanInputsOnGpu& in) {
  return selective_scan(in.u, in.delta, in.A, in.Bm, in.Cm,
                        {.D_skip = in.D, .z = in.z, .delta_bias = in.delta_bias, .delta_softplus = true});
}

void BM_scan_gpu(benchmark::State& state, bool backward) {
  if (!cuda_is_available()) return state.SkipWithError("no CUDA GPU on this machine");
  const int64_t B = state.range(1), D = 1536, N = 16, L = state.range(0);
  cuda::ScopedScanSegments segments(state.range(2));
  ScanInputsOnGpu in = make_inputs(B, D, L, N, backward);
  Tensor dy = backward ? ones({B, D, L}, {.device = Device::cuda(0)}) : Tensor();
  auto run = [&] {
    if (!backward) {
      NoGradGuard no_grad;
      scan(in);
      return;
    }
    scan(in).y.backward(dy);
  };
  for (int i = 0; i < 3; ++i) run();
  cuda::Event start, end;
  double seconds = 0;
  for (auto _ : state) {
    start.record();
    run();
    end.record();
    const double s = cuda::Event::elapsed_ms(start, end) / 1000.0;
    seconds += s;
    state.SetIterationTime(s);
  }
  const int64_t bdl = B * D * L * 4, bnl = B * N * L * 4;
  const int64_t bytes = backward ? (4 * bdl + 2 * bnl) + (4 * bdl + 2 * bnl) : 4 * bdl + 2 * bnl;
  state.SetBytesProcessed(state.iterations() * bytes);
  // The multiple of the memory floor: the time against those bytes moved once at the H200's
  // measured copy bandwidth (benchmarks/RESULTS.md, "the CUDA backend").
  constexpr double kHbmBytesPerSecond = 4.26e12;
  state.counters["x_floor"] = seconds / static_cast<double>(state.iterations()) /
                              (static_cast<double>(bytes) / kHbmBytesPerSecond);
}

BENCHMARK_CAPTURE(BM_scan_gpu, forward, false)
    ->Args({512, 16, 0})->Args({2048, 16, 0})->Args({8192, 16, 0})->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_scan_gpu, forward_backward, true)
    ->Args({512, 16, 0})->Args({2048, 16, 0})->Args({8192, 16, 0})->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_scan_gpu, small_batch, true)
    ->ArgsProduct({{2048}, {16, 8}, {0, 1, 2}})
    ->ArgsProduct({{8192}, {4}, {0, 1, 4, 8, 16}})
    ->ArgsProduct({{16384}, {2}, {0, 1, 16}})
    ->ArgsProduct({{32768}, {1}, {0, 1, 8, 16, 32, 64}})
    ->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_scan_gpu, small_batch_forward, false)
    ->ArgsProduct({{32768}, {1}, {0, 1, 16}})
    ->UseManualTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
