#pragma once
// One training step as apps/common/trainer.cpp runs it (forward, cross-entropy, backward, gradient
// clipping, AdamW), timed by Google Benchmark for any LanguageModel: items/s = tokens/s. Random
// tokens: the speed does not depend on the text. With busy_processes > 0 the steps run while that
// many other processes spin (background_load.h), started after one warm-up step.
#include <benchmark/benchmark.h>

#include "background_load.h"
#include "ops/cpu/parallel.h"

#include "mambagrad.h"
#include "models/language_model.h"

namespace mg::bench {

inline void time_train_steps(benchmark::State& state, LanguageModel& model, int64_t batch, int64_t seq_len,
                             int64_t busy_processes = 0) {
  Generator gen(0);
  optim::AdamW optimizer(optim::weight_decay_groups(model.named_parameters(), 2e-3, 0.1), {.beta1 = 0.9, .beta2 = 0.95});
  TensorList leaves = model.parameters();
  Tensor tokens = randint(0, model.vocab_size(), {batch, seq_len + 1}, gen);
  Tensor inputs = contiguous(narrow(tokens, 1, 0, seq_len)), targets = contiguous(narrow(tokens, 1, 1, seq_len));
  auto step = [&] {
    Tensor loss = model.loss(inputs, targets);
    optimizer.zero_grad();
    loss.backward();
    nn::clip_grad_norm_(leaves, 1.0);
    optimizer.step();
    benchmark::DoNotOptimize(loss.raw_data());
  };
  step();  // warm-up: the thread pool, the allocator's first pages
  BackgroundLoad load(busy_processes);
  for (auto _ : state) step();
  state.SetItemsProcessed(state.iterations() * batch * seq_len);
  state.counters["parameters"] = static_cast<double>(model.num_parameters());
  state.counters["threads"] = get_num_threads();
}

}  // namespace mg::bench
