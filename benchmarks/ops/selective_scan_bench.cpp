// The selective scan on the CPU, float32. items/s = state updates/s = B D L N per call (the
// issue's targets, 2 cores, at (B, D, N, L) = (2, 256, 16, 2048): forward >= 3 G/s, forward +
// backward >= 0.8 G/s). Args: B, D, N, L, options, where options = 1 is Mamba's configuration
// (delta_bias + softplus, D skip, z gate; Bm, Cm (B, N, L)), the one timed in PyTorch by
// benchmarks/reference/selective_scan_torch.py, and 0 the bare recurrence.
//   forward            selective_scan under NoGradGuard (no checkpoints saved)
//   forward_backward   selective_scan, then backward from dy to all eight inputs
//   step               one recurrent step (selective_scan_step) at batch B, D channels, N lanes
//   peak_memory        the extra resident memory of one forward + backward, measured in a fresh
//                      process (this binary run with --peak-memory B D N L), over the inputs' bytes
//   OMP_NUM_THREADS=2 ./selective_scan_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "mambagrad.h"
#include "ops/selective_scan.h"

namespace {

using namespace mg;

struct Problem {
  Tensor u, delta, A, Bm, Cm;
  SelectiveScanArgs args;
  TensorList leaves() const { return {u, delta, A, Bm, Cm, args.D_skip, args.z, args.delta_bias}; }
  int64_t input_bytes() const {
    int64_t bytes = 0;
    for (const Tensor& t : leaves()) bytes += t.defined() ? t.nbytes() : 0;
    return bytes;
  }
};

Problem make_problem(int64_t B, int64_t D, int64_t N, int64_t L, bool options, bool requires_grad) {
  Generator gen(1);
  auto r = [&](const Shape& shape, double low, double high) {
    Tensor t = uniform(shape, low, high, gen);
    if (requires_grad) t.requires_grad_(true);
    return t;
  };
  Problem p;
  p.u = r({B, D, L}, -1, 1);
  p.delta = options ? r({B, D, L}, -4, -1) : r({B, D, L}, 0.01, 0.2);
  p.A = r({D, N}, -16, -1);
  p.Bm = r({B, N, L}, -1, 1);
  p.Cm = r({B, N, L}, -1, 1);
  if (options) {
    p.args.D_skip = r({D}, -1, 1);
    p.args.z = r({B, D, L}, -2, 2);
    p.args.delta_bias = r({D}, -1, 1);
    p.args.delta_softplus = true;
  }
  return p;
}

void set_items(benchmark::State& state) {
  state.SetItemsProcessed(state.iterations() * state.range(0) * state.range(1) * state.range(2) * state.range(3));
}

void BM_forward(benchmark::State& state) {
  Problem p = make_problem(state.range(0), state.range(1), state.range(2), state.range(3), state.range(4), false);
  NoGradGuard no_grad;
  for (auto _ : state) {
    SelectiveScanResult r = selective_scan(p.u, p.delta, p.A, p.Bm, p.Cm, p.args);
    benchmark::DoNotOptimize(r.y.raw_data());
  }
  set_items(state);
}

// One forward and one backward (dL/dy = dy) through the graph; the gradients are dropped each time.
void forward_backward(const Problem& p, const Tensor& dy) {
  SelectiveScanResult r = selective_scan(p.u, p.delta, p.A, p.Bm, p.Cm, p.args);
  r.y.backward(dy);
}

void BM_forward_backward(benchmark::State& state) {
  Problem p = make_problem(state.range(0), state.range(1), state.range(2), state.range(3), state.range(4), true);
  Generator gen(2);
  Tensor dy = uniform(p.u.shape(), -1, 1, gen);
  for (auto _ : state) {
    forward_backward(p, dy);
    for (Tensor& t : p.leaves())
      if (t.defined()) t.zero_grad();
  }
  set_items(state);
}

// One recurrent step (selective_scan_step) at batch B over D channels: items = B D N state updates.
// Args: B, D, N. Mamba's options (softplus, delta_bias, D skip, z gate), the generation setting.
void BM_step(benchmark::State& state) {
  const int64_t B = state.range(0), D = state.range(1), N = state.range(2);
  Problem p = make_problem(B, D, N, 1, true, false);
  NoGradGuard no_grad;
  Tensor h = zeros({B, D, N});
  Tensor u = p.u.squeeze(-1), delta = p.delta.squeeze(-1), Bm = p.Bm.squeeze(-1), Cm = p.Cm.squeeze(-1);
  SelectiveScanArgs args = p.args;
  args.z = args.z.squeeze(-1);
  for (auto _ : state) {
    Tensor y = selective_scan_step(h, u, delta, p.A, Bm, Cm, args);
    benchmark::DoNotOptimize(y.raw_data());
  }
  state.SetItemsProcessed(state.iterations() * B * D * N);
}

int64_t proc_status_kb(const std::string& key) {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind(key, 0) == 0) return std::stoll(line.substr(key.size()));
  return -1;
}

// The --peak-memory mode: prints "<extra bytes> <input bytes> <result bytes>" for one forward +
// backward, where the results are y, last_state and the eight gradients (as large as the inputs):
// what any implementation must allocate. The rest of the extra is the op's own: checkpoints and
// workspace.
int print_peak_memory(int64_t B, int64_t D, int64_t N, int64_t L) {
  forward_backward(make_problem(1, 2, N, 8, true, true), ones({1, 2, 8}));  // start the threads
  // After the first allocation (tensor/storage.cpp sets its own options then, to keep freed blocks
  // for reuse): every block above 64 KiB gets its own mapping, returned to the system when freed,
  // so no freed buffer is silently reused and the peak counts every live allocation.
  mallopt(M_MMAP_THRESHOLD, 64 * 1024);
  mallopt(M_TRIM_THRESHOLD, 64 * 1024);
  Problem p = make_problem(B, D, N, L, true, true);
  Generator gen(2);
  Tensor dy = uniform(p.u.shape(), -1, 1, gen);
  malloc_trim(0);
  const int64_t base_kb = proc_status_kb("VmRSS:");
  std::ofstream("/proc/self/clear_refs") << "5";  // resets the peak (VmHWM) to the current RSS
  forward_backward(p, dy);
  const int64_t peak_kb = proc_status_kb("VmHWM:");
  const int64_t results = p.u.nbytes() + B * D * N * static_cast<int64_t>(sizeof(float)) + p.input_bytes();
  std::printf("%lld %lld %lld\n", static_cast<long long>((peak_kb - base_kb) * 1024),
              static_cast<long long>(p.input_bytes()), static_cast<long long>(results));
  return 0;
}

void BM_peak_memory(benchmark::State& state) {
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  const std::string command = self + " --peak-memory " + std::to_string(state.range(0)) + " " +
                              std::to_string(state.range(1)) + " " + std::to_string(state.range(2)) + " " +
                              std::to_string(state.range(3));
  long long extra = 0, inputs = 1, results = 0;
  for (auto _ : state) {
    FILE* pipe = popen(command.c_str(), "r");
    if (!pipe || std::fscanf(pipe, "%lld %lld %lld", &extra, &inputs, &results) != 3)
      state.SkipWithError("--peak-memory failed");
    if (pipe) pclose(pipe);
  }
  const double mb = 1 << 20;
  state.counters["inputs_MB"] = static_cast<double>(inputs) / mb;
  state.counters["extra_MB"] = static_cast<double>(extra) / mb;
  state.counters["extra_per_input"] = static_cast<double>(extra) / static_cast<double>(inputs);
  state.counters["own_per_input"] = static_cast<double>(extra - results) / static_cast<double>(inputs);
}

void scan_shapes(benchmark::internal::Benchmark* b) {
  for (int64_t L : {128, 512, 2048}) b->Args({2, 256, 16, L, 1});
  b->Args({1, 1536, 16, 2048, 1});  // one layer of Mamba-130m
  b->Args({2, 256, 16, 2048, 0});
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

BENCHMARK(BM_forward)->Apply(scan_shapes);
BENCHMARK(BM_forward_backward)->Apply(scan_shapes);
BENCHMARK(BM_step)->Args({1, 256, 16})->Args({1, 1536, 16})->Args({8, 256, 16})->Args({1, 256, 7})->Args({1, 256, 8})
    ->Args({1, 256, 32})->Args({1, 256, 64});
BENCHMARK(BM_peak_memory)->Args({2, 256, 16, 2048})->Args({1, 1536, 16, 2048})->Iterations(1)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  if (argc == 6 && std::string(argv[1]) == "--peak-memory")
    return print_peak_memory(std::stoll(argv[2]), std::stoll(argv[3]), std::stoll(argv[4]), std::stoll(argv[5]));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
