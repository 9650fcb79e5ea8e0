// Recurrent generation with the Mamba LM on the CPU, float32, the default `mambagrad train` config
// (d_model 128, 4 layers, N 16, vocab 65: 474,880 parameters). items/s = tokens/s = B per call.
// The target: >= 10,000 tokens/s at batch 1.
//   step            MambaLM::step: the fused step op on the CPU (ops/mamba_step.h)
//   step_composed   MambaLM::step_composed: the same math from library ops (the reference)
//   step_after      the fused step at batch 1 after Arg tokens already generated: the time per
//                   token does not grow with the context (tutorials/07_inference quotes it)
// Arg: batch (step_after: the position). Weights are random (the speed does not depend on them).
//   OMP_NUM_THREADS=1 ./mamba_step_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include "mambagrad.h"
#include "models/mamba/model.h"

namespace {

using namespace mg;

template <bool kFused>
void BM_generate(benchmark::State& state) {
  const int64_t batch = state.range(0);
  Generator gen(0);
  mamba::MambaConfig config;
  config.vocab_size = 65;
  mamba::MambaLM model(config, gen);
  model.eval();
  NoGradGuard no_grad;
  mamba::InferenceState inference = model.new_state(batch);
  Tensor tokens = randint(0, config.vocab_size, {batch}, gen);
  for (auto _ : state) {
    Tensor logits = kFused ? model.step(tokens, inference) : model.step_composed(tokens, inference);
    benchmark::DoNotOptimize(logits.raw_data());
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

void BM_step(benchmark::State& state) { BM_generate<true>(state); }
void BM_step_composed(benchmark::State& state) { BM_generate<false>(state); }

void BM_step_after(benchmark::State& state) {
  Generator gen(0);
  mamba::MambaConfig config;
  config.vocab_size = 65;
  mamba::MambaLM model(config, gen);
  model.eval();
  NoGradGuard no_grad;
  mamba::InferenceState inference = model.new_state(1);
  Tensor token = randint(0, config.vocab_size, {1}, gen);
  for (int64_t position = 0; position < state.range(0); ++position) model.step(token, inference);
  for (auto _ : state) {
    Tensor logits = model.step(token, inference);
    benchmark::DoNotOptimize(logits.raw_data());
  }
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK(BM_step)->Arg(1)->Arg(8)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_step_composed)->Arg(1)->Arg(8)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_step_after)->Arg(256)->Arg(4096)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
