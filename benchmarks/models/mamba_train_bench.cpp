// One training step of the Mamba LM on the CPU, float32, the default `mambagrad train` config
// (d_model 128, 4 layers, N 16, vocab 65: 474,880 parameters) at batch 32 x seq_len 128:
// forward, cross-entropy, backward, gradient clipping and AdamW, as apps/common/trainer.cpp runs
// them. items/s = tokens/s (4096 a step). The target: >= 15,000 tokens/s on 2 cores (the
// goal 20,000). Random tokens: the speed does not depend on the text.
//   OMP_NUM_THREADS=2 ./mamba_train_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include "mambagrad.h"
#include "models/mamba/model.h"
#include "nn/clip_grad.h"
#include "nn/optim/adamw.h"
#include "nn/optim/param_groups.h"

namespace {

using namespace mg;

void BM_train_step(benchmark::State& state) {
  const int64_t batch = 32, seq_len = 128;
  Generator gen(0);
  mamba::MambaConfig config;
  config.vocab_size = 65;
  mamba::MambaLM model(config, gen);
  nn::NamedTensors params = model.named_parameters();
  optim::AdamW optimizer(optim::weight_decay_groups(params, 2e-3, 0.1), {.beta1 = 0.9, .beta2 = 0.95});
  TensorList leaves = model.parameters();
  Tensor tokens = randint(0, config.vocab_size, {batch, seq_len + 1}, gen);
  Tensor inputs = contiguous(narrow(tokens, 1, 0, seq_len)), targets = contiguous(narrow(tokens, 1, 1, seq_len));
  for (auto _ : state) {
    Tensor loss = model.loss(inputs, targets);
    optimizer.zero_grad();
    loss.backward();
    nn::clip_grad_norm_(leaves, 1.0);
    optimizer.step();
    benchmark::DoNotOptimize(loss.raw_data());
  }
  state.SetItemsProcessed(state.iterations() * batch * seq_len);
}

BENCHMARK(BM_train_step)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);

}  // namespace

BENCHMARK_MAIN();
