// The Mamba LM on a GPU, float32, TF32 off: a training step of the two configs of the CUDA
// backend issue, and batch-1 generation with and without a CUDA graph.
//   config A: vocab 65, d_model 384, n_layer 6, d_state 16, batch 64 x 256 (16,384 tokens a step)
//   config B: vocab 50280, d_model 768, n_layer 24 (the mamba-130m shape), batch 8 x 2048
// and the training step's growth with the sequence length: config B's shape at L = 512 to 16,384
// with 16,384 tokens a step (batch 16,384 / L), so a linear-time model keeps a flat step time.
// A training step is forward, cross-entropy, backward, clipping and AdamW, as the trainer runs
// them; an iteration times kStepsPerIteration steps between two CUDA events (no wait in between,
// so the host queues ahead as in training), and the reported time is per step. Peak memory is the
// caching allocator's (tensors; reserved adds the cache). Random tokens: speed does not depend on
// the text.
//   ./mamba_gpu_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <chrono>

#include "apps/common/token_stepper.h"
#include "cuda/runtime.h"
#include "mambagrad.h"
#include "models/mamba/model.h"
#include "nn/clip_grad.h"
#include "nn/optim/adamw.h"
#include "nn/optim/param_groups.h"

namespace {

using namespace mg;

constexpr int kStepsPerIteration = 5;

struct Workload {
  int64_t vocab, d_model, n_layer, batch, seq_len;
};
constexpr Workload kConfigA{65, 384, 6, 64, 256};
constexpr Workload kConfigB{50280, 768, 24, 8, 2048};

mamba::MambaConfig config_of(const Workload& w) {
  mamba::MambaConfig c;
  c.vocab_size = w.vocab;
  c.d_model = w.d_model;
  c.n_layer = w.n_layer;
  c.d_state = 16;
  return c;
}

void BM_train_step(benchmark::State& state, Workload w) {
  if (state.range(0) > 0) {  // a length sweep: L from the argument, the same tokens a step
    w.batch = w.batch * w.seq_len / state.range(0);
    w.seq_len = state.range(0);
  }
  if (!cuda_is_available()) return state.SkipWithError("no CUDA GPU on this machine");
  const Device gpu = Device::cuda(0);
  Generator gen(0);
  mamba::MambaLM model(config_of(w), gen);
  model.to(gpu);
  nn::NamedTensors params = model.named_parameters();
  optim::AdamW optimizer(optim::weight_decay_groups(params, 6e-4, 0.1), {.beta1 = 0.9, .beta2 = 0.95});
  TensorList leaves = model.parameters();
  Tensor tokens = randint(0, w.vocab, {w.batch, w.seq_len + 1}, gen);
  Tensor inputs = contiguous(narrow(tokens, 1, 0, w.seq_len)).to(gpu);
  Tensor targets = contiguous(narrow(tokens, 1, 1, w.seq_len)).to(gpu);
  Tensor loss;
  auto step = [&] {
    loss = model.loss(inputs, targets);
    optimizer.zero_grad();
    loss.backward();
    nn::clip_grad_norm_(leaves, 1.0);
    optimizer.step();
  };
  for (int i = 0; i < 3; ++i) step();  // warm-up: kernels load, the cache fills
  cuda::synchronize();
  cuda::reset_peak_memory_stats();
  const int64_t mallocs = cuda::memory_stats().device_mallocs;
  cuda::Event start, end;
  for (auto _ : state) {
    start.record();
    for (int i = 0; i < kStepsPerIteration; ++i) step();
    end.record();
    state.SetIterationTime(cuda::Event::elapsed_ms(start, end) / 1000.0 / kStepsPerIteration);
  }
  const cuda::MemoryStats stats = cuda::memory_stats();
  state.SetItemsProcessed(state.iterations() * w.batch * w.seq_len);  // tokens/s per step time
  state.counters["peak_GB"] = static_cast<double>(stats.peak_allocated_bytes) / 1e9;
  state.counters["reserved_GB"] = static_cast<double>(stats.peak_reserved_bytes) / 1e9;
  state.counters["new_mallocs"] = static_cast<double>(stats.device_mallocs - mallocs);
  state.counters["loss"] = loss.item<double>();
  state.counters["params_M"] = static_cast<double>(model.num_parameters()) / 1e6;
}

// Batch-1 generation: each token is the recurrent step, the logits copied back and the next token
// picked on the host (greedy), as `mambagrad generate --device cuda` runs it. Host clock per token.
void BM_generate(benchmark::State& state, Workload w, bool graph) {
  if (!cuda_is_available()) return state.SkipWithError("no CUDA GPU on this machine");
  const Device gpu = Device::cuda(0);
  NoGradGuard no_grad;
  Generator gen(0);
  mamba::MambaLM model(config_of(w), gen);
  model.to(gpu);
  mamba::InferenceState inference;
  Tensor prompt = randint(0, w.vocab, {1, 16}, gen).to(gpu);
  model.forward(prompt, &inference);
  apps::TokenStepper stepper([&](const Tensor& t) { return model.step(t, inference); }, gpu, 1, graph);
  int64_t token = 1;
  auto next = [&] { token = argmax(stepper.step({token}), -1).to(Device::cpu()).item<int64_t>() % w.vocab; };
  for (int i = 0; i < 3; ++i) next();  // warm-up: the first step loads kernels, the second captures
  for (auto _ : state) next();
  state.SetItemsProcessed(state.iterations());
  state.counters["graph"] = stepper.replaying() ? 1 : 0;
}

BENCHMARK_CAPTURE(BM_train_step, config_A, kConfigA)->Arg(0)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(4);
BENCHMARK_CAPTURE(BM_train_step, config_B, kConfigB)->Arg(0)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(2);
BENCHMARK_CAPTURE(BM_train_step, config_B_length, kConfigB)
    ->RangeMultiplier(2)->Range(512, 16384)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(2);
BENCHMARK_CAPTURE(BM_generate, config_B_graph, kConfigB, true)->UseRealTime()->Unit(benchmark::kMicrosecond)->Iterations(256);
BENCHMARK_CAPTURE(BM_generate, config_B_eager, kConfigB, false)->UseRealTime()->Unit(benchmark::kMicrosecond)->Iterations(256);

}  // namespace

BENCHMARK_MAIN();
