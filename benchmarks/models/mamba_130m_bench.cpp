// Batch-1 generation with a model of the mamba-130m shape (d_model 768, 24 layers, N 16, vocab
// 50280: 129M parameters, 516 MB in float32; random weights, the speed does not depend on them).
// Every token reads every weight once, so generation is bound by memory bandwidth: the floor is
// (read bandwidth) / (bytes of weights per token), and both are measured in the same run.
//   read_bandwidth/T   T threads sum a buffer as large as the weights (516 MB, far beyond any
//                      cache): the machine's read bandwidth. Runs first; the step benchmarks
//                      report their fraction of the floor it sets ("of_floor").
//   step/T             MambaLM::step (the fused CPU step), batch 1, T threads: tokens/s
//   prompt/L           MambaLM::forward over a prompt of L tokens (the parallel path): tokens/s
//   gemv_f32/T, gemv_bf16/T  would bf16 weights pay? A GEMV over as many weights as the model has
//                      (129M: 516 MB in float32, 258 MB in bf16 widened to float32 in registers),
//                      x and the sums in float32: items/s = whole-model passes (tokens) per second
//   OMP_NUM_THREADS=2 build/cpu/benchmarks/mamba_130m_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <bit>
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "mambagrad.h"
#include "models/mamba/model.h"
#include "ops/cpu/parallel.h"

namespace {

using namespace mg;

mamba::MambaConfig config_130m() {
  mamba::MambaConfig c;
  c.d_model = 768;
  c.n_layer = 24;
  c.vocab_size = 50280;
  c.d_state = 16;
  c.d_conv = 4;
  c.expand = 2;
  return c;
}

mamba::MambaLM& model_130m() {
  static std::unique_ptr<mamba::MambaLM> model = [] {
    Generator gen(0);
    auto m = std::make_unique<mamba::MambaLM>(config_130m(), gen);
    m->eval();
    return m;
  }();
  return *model;
}

int64_t weight_bytes() { return model_130m().num_parameters() * 4; }

double g_bandwidth[3] = {0, 0, 0};  // bytes/s read by 1 and 2 threads, set by read_bandwidth

// Google Benchmark knows the elapsed time only after the loop; a manual timer keeps the figure.
void BM_read_bandwidth_timed(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const int64_t n = weight_bytes() / 4;
  static std::vector<float> buffer;
  if (buffer.empty()) buffer.assign(n, 1.0f);
  double seconds = 0, total = 0;
  int64_t passes = 0;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    double sum = 0;
#pragma omp parallel for num_threads(threads) reduction(+ : sum) schedule(static)
    for (int64_t block = 0; block < n / 4096; ++block) {
      const float* p = buffer.data() + block * 4096;
      float lanes[16] = {};
      for (int64_t i = 0; i < 4096; i += 16)
#pragma omp simd
        for (int k = 0; k < 16; ++k) lanes[k] += p[i + k];
      for (float v : lanes) sum += v;
    }
    benchmark::DoNotOptimize(total += sum);
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ++passes;
  }
  g_bandwidth[threads] = static_cast<double>(passes * n * 4) / seconds;
  state.SetBytesProcessed(passes * n * 4);
}

void BM_step(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  set_num_threads(threads);
  mamba::MambaLM& model = model_130m();
  NoGradGuard no_grad;
  mamba::InferenceState inference = model.new_state(1);
  Tensor token = tensor({int64_t{42}});
  model.step(token, inference);  // the first step allocates the workspace and A
  for (auto _ : state) {
    Tensor logits = model.step(token, inference);
    benchmark::DoNotOptimize(logits.raw_data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * weight_bytes());
  state.counters["MB_per_token"] = static_cast<double>(weight_bytes()) / 1e6;
  if (g_bandwidth[threads] > 0) {
    state.counters["floor_tokens_per_s"] = g_bandwidth[threads] / static_cast<double>(weight_bytes());
    state.counters["of_floor"] = benchmark::Counter(static_cast<double>(weight_bytes()) / g_bandwidth[threads],
                                                    benchmark::Counter::kIsIterationInvariantRate);
  }
}

void BM_prompt(benchmark::State& state) {
  const int64_t length = state.range(0);
  mamba::MambaLM& model = model_130m();
  NoGradGuard no_grad;
  Generator gen(1);
  Tensor tokens = randint(0, 50280, {1, length}, gen);
  for (auto _ : state) {
    mamba::InferenceState inference;
    Tensor logits = model.forward(tokens, &inference);
    benchmark::DoNotOptimize(logits.raw_data());
  }
  state.SetItemsProcessed(state.iterations() * length);
}

// out[r] = <W row r, x> for rows [r0, r1), with W's rows in float32 or in bf16 (a float32's high
// half, widened by a shift). 16 lanes per row, summed in a fixed order.
template <class W>
void gemv_rows(float* out, const W* weights, const float* x, int64_t r0, int64_t r1, int64_t cols) {
  for (int64_t r = r0; r < r1; ++r) {
    const W* w = weights + r * cols;
    float lanes[16] = {};
    for (int64_t c = 0; c < cols; c += 16)
#pragma omp simd
      for (int k = 0; k < 16; ++k) {
        float wk;
        if constexpr (sizeof(W) == 2) wk = std::bit_cast<float>(static_cast<uint32_t>(w[c + k]) << 16);
        else wk = w[c + k];
        lanes[k] += wk * x[c + k];
      }
    float sum = 0;
    for (float v : lanes) sum += v;
    out[r] = sum;
  }
}

template <class W>
void BM_gemv(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const int64_t cols = 768, rows = model_130m().num_parameters() / cols;
  static std::vector<W> weights;
  if (weights.empty()) {
    weights.resize(rows * cols);
    for (int64_t i = 0; i < rows * cols; ++i) {
      const float v = static_cast<float>(i % 97) * 0.01f - 0.5f;
      if constexpr (sizeof(W) == 2) weights[i] = static_cast<W>(std::bit_cast<uint32_t>(v) >> 16);
      else weights[i] = v;
    }
  }
  std::vector<float> x(cols, 0.5f), out(rows);
  for (auto _ : state) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t chunk = 0; chunk < rows / 512; ++chunk)
      gemv_rows(out.data(), weights.data(), x.data(), chunk * 512, (chunk + 1) * 512, cols);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * (rows / 512 * 512) * cols * static_cast<int64_t>(sizeof(W)));
}
void BM_gemv_f32(benchmark::State& state) { BM_gemv<float>(state); }
void BM_gemv_bf16(benchmark::State& state) { BM_gemv<uint16_t>(state); }

BENCHMARK(BM_read_bandwidth_timed)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_step)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->MinTime(3.0);
BENCHMARK(BM_prompt)->Arg(16)->Arg(128)->Arg(512)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_gemv_f32)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_gemv_bf16)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->MinTime(2.0);

}  // namespace

BENCHMARK_MAIN();
