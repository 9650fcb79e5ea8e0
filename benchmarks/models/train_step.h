#pragma once
// One training step as `mambagrad train` takes it (apps/common/train_step.h: forward,
// cross-entropy, backward, gradient clipping, AdamW), timed by Google Benchmark for any
// LanguageModel: items/s = tokens/s. Random tokens: the speed does not depend on the text. With
// busy_processes > 0 the steps run while that many other processes spin (background_load.h),
// started after one warm-up step. `split` picks the CPU step: the batch's two halves side by side
// (the default since 2026-12-02) or the whole batch at once (the step before), for comparisons in
// one run.
#include <benchmark/benchmark.h>

#include "apps/common/train_step.h"
#include "background_load.h"
#include "ops/cpu/parallel.h"

#include "mambagrad.h"
#include "models/language_model.h"

namespace mg::bench {

inline void time_train_steps(benchmark::State& state, LanguageModel& model, int64_t batch, int64_t seq_len,
                             int64_t busy_processes = 0, apps::BatchSplit split = apps::BatchSplit::automatic) {
  Generator gen(0);
  optim::AdamW optimizer(optim::weight_decay_groups(model.named_parameters(), 2e-3, 0.1), {.beta1 = 0.9, .beta2 = 0.95});
  TensorList params = model.parameters();
  Tensor tokens = randint(0, model.vocab_size(), {batch, seq_len + 1}, gen);
  Tensor inputs = contiguous(narrow(tokens, 1, 0, seq_len)), targets = contiguous(narrow(tokens, 1, 1, seq_len));
  auto step = [&] {
    apps::StepResult result = apps::train_step(model, optimizer, params, inputs, targets, 1.0, split);
    benchmark::DoNotOptimize(result.loss.raw_data());
  };
  step();  // warm-up: the thread pool, the allocator's first pages
  BackgroundLoad load(busy_processes);
  for (auto _ : state) step();
  state.SetItemsProcessed(state.iterations() * batch * seq_len);
  state.counters["parameters"] = static_cast<double>(model.num_parameters());
  state.counters["threads"] = get_num_threads();
}

}  // namespace mg::bench
