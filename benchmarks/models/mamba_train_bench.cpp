// One training step of the Mamba LM on the CPU, float32, the default `mambagrad train` config
// (d_model 128, 4 layers, N 16, vocab 65: 474,880 parameters) at batch 32 x seq_len 128:
// forward, cross-entropy, backward, gradient clipping and AdamW, as apps/common/trainer.cpp runs
// them (benchmarks/models/train_step.h). items/s = tokens/s (4096 a step). The target:
// >= 15,000 tokens/s on 2 cores (the goal 20,000).
//
// busy_processes:2 runs the same step while two other processes keep the cores busy (plain spin
// loops, started after the warm-up and killed at the end): a laptop or a shared server. The
// target for a 2-core machine: loaded >= 40% of idle tokens/s (not met yet: benchmarks/RESULTS.md).
//   OMP_NUM_THREADS=2 ./mamba_train_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include "models/mamba/model.h"
#include "train_step.h"

namespace {

using namespace mg;

void BM_train_step(benchmark::State& state) {
  Generator gen(0);
  mamba::MambaConfig config;
  config.vocab_size = 65;
  mamba::MambaLM model(config, gen);
  bench::time_train_steps(state, model, 32, 128, state.range(0));
}

BENCHMARK(BM_train_step)->ArgName("busy_processes")->Arg(0)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime()
    ->MinTime(4.0);

}  // namespace

BENCHMARK_MAIN();
