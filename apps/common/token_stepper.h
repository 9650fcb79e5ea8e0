#pragma once
// Runs a model's recurrent step one token at a time, as generation does. On a GPU the step is a
// few hundred small kernels whose launches cost more than their work at batch 1, so after one
// ordinary step (which loads every kernel and sets the state up) the step is captured once in a
// CUDA graph (cuda/runtime.h) and replayed for every later token: one launch per token. On the
// CPU, or with use_graph false, every token runs the step directly.
//
// The step function must read its tokens only from the tensor it is given (always the same one,
// on the device, refreshed before each replay) and keep its state in tensors updated in place
// (MambaLM::step does both); the logits it returns are refreshed by each replay.
#include <functional>
#include <vector>

#include "cuda/runtime.h"
#include "tensor/tensor.h"

namespace mg::apps {

class TokenStepper {
 public:
  using StepFn = std::function<Tensor(const Tensor& tokens)>;  // tokens (B) int64 -> logits (B, V)

  TokenStepper(StepFn step, Device device, int64_t batch, bool use_graph = true);

  // logits (B, V) on the device, for the next tokens (B values).
  Tensor step(const std::vector<int64_t>& tokens);
  bool replaying() const { return graph_.captured(); }

 private:
  StepFn step_;
  Device device_;
  bool use_graph_;
  Tensor input_;  // (B) int64 on the device: the address the graph reads
  Tensor logits_;
  int64_t steps_ = 0;
  cuda::Graph graph_;
};

}  // namespace mg::apps
