// One training step of the Mamba LM on the CPU, float32, the default `mambagrad train` config
// (d_model 128, 4 layers, N 16, vocab 65: 474,880 parameters) at batch 32 x seq_len 128:
// forward, cross-entropy, backward, gradient clipping and AdamW, as apps/common/trainer.cpp runs
// them (apps/common/train_step.h, timed by benchmarks/models/train_step.h). items/s = tokens/s
// (4096 a step). The target: >= 15,000 tokens/s on 2 cores (the goal 20,000).
//
// busy_processes:2 runs the same step while two other processes keep the cores busy (plain spin
// loops, started after the warm-up and killed at the end): a laptop or a shared server. The
// target for a 2-core machine: loaded >= 40% of idle tokens/s, and the idle figure no more than
// 3% below the step before it (benchmarks/RESULTS.md). halves:1 is the trainer's CPU step (the
// batch's two halves side by side, one join a step); halves:0 the whole batch at once, the step
// before 2026-12-02, for comparison in the same run. Random interleaving alternates the
// repetitions of all four, so a change in the machine's load touches them alike:
//   OMP_NUM_THREADS=2 ./mamba_train_bench --benchmark_repetitions=2 --benchmark_enable_random_interleaving=true
#include "models/mamba/model.h"
#include "train_step.h"

namespace {

using namespace mg;

void BM_train_step(benchmark::State& state) {
  Generator gen(0);
  mamba::MambaConfig config;
  config.vocab_size = 65;
  mamba::MambaLM model(config, gen);
  bench::time_train_steps(state, model, 32, 128, state.range(0),
                          state.range(1) != 0 ? apps::BatchSplit::halves : apps::BatchSplit::whole);
}

BENCHMARK(BM_train_step)
    ->ArgNames({"busy_processes", "halves"})
    ->ArgsProduct({{0, 2}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(4.0);

}  // namespace

BENCHMARK_MAIN();
