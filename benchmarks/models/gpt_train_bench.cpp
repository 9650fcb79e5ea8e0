// One training step of the GPT on the CPU, float32, as `mambagrad train --model gpt` runs it
// (benchmarks/models/train_step.h). Default config: 3 layers, 112 wide, 4 heads, vocab 65
// (477,792 parameters), batch 32 x seq_len 128; items/s = tokens/s. The PyTorch reference of the
// same model and step is benchmarks/reference/gpt_torch.py. Args: n_layer, n_embd, n_head, B, L.
//   OMP_NUM_THREADS=2 ./gpt_train_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include "models/gpt/model.h"
#include "train_step.h"

namespace {

void BM_gpt_train_step(benchmark::State& state) {
  mg::gpt::GPTConfig config;
  config.n_layer = state.range(0), config.n_embd = state.range(1), config.n_head = state.range(2);
  config.vocab_size = 65;
  config.n_positions = state.range(4);
  mg::Generator gen(0);
  mg::gpt::GPT model(config, gen);
  mg::bench::time_train_steps(state, model, state.range(3), state.range(4));
}

BENCHMARK(BM_gpt_train_step)
    ->Args({3, 112, 4, 32, 128})
    ->ArgNames({"layers", "C", "H", "B", "L"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(3.0);

}  // namespace

BENCHMARK_MAIN();
