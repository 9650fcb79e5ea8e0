// One training step of the GPT on the CPU, float32, as `mambagrad train --model gpt` runs it:
// forward, cross-entropy, backward, gradient clipping and AdamW. Default config: 3 layers, 112
// wide, 4 heads, vocab 65 (477,792 parameters), batch 32 x seq_len 128. items/s = tokens/s.
// The PyTorch reference of the same model and step is benchmarks/reference/gpt_torch.py.
// Args: n_layer, n_embd, n_head, batch, seq_len.
//   OMP_NUM_THREADS=2 ./gpt_train_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include "mambagrad.h"
#include "models/gpt/model.h"

namespace {

using namespace mg;

void BM_gpt_train_step(benchmark::State& state) {
  gpt::GPTConfig config;
  config.n_layer = state.range(0), config.n_embd = state.range(1), config.n_head = state.range(2);
  const int64_t batch = state.range(3), seq_len = state.range(4);
  config.vocab_size = 65;
  config.n_positions = seq_len;
  Generator gen(0);
  gpt::GPT model(config, gen);
  optim::AdamW optimizer(optim::weight_decay_groups(model.named_parameters(), 2e-3, 0.1), {.beta1 = 0.9, .beta2 = 0.95});
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
  state.counters["parameters"] = static_cast<double>(model.num_parameters());
}

BENCHMARK(BM_gpt_train_step)
    ->Args({3, 112, 4, 32, 128})
    ->ArgNames({"layers", "C", "H", "B", "L"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(3.0);

}  // namespace

BENCHMARK_MAIN();
