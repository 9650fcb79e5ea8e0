#include "apps/common/token_stepper.h"

#include "ops/binary.h"
#include "tensor/factory.h"

namespace mg::apps {

TokenStepper::TokenStepper(StepFn step, Device device, int64_t batch, bool use_graph)
    : step_(std::move(step)), device_(device), use_graph_(use_graph && device.is_cuda()) {
  input_ = zeros({batch}, {.dtype = DType::Int64, .device = device});
}

Tensor TokenStepper::step(const std::vector<int64_t>& tokens) {
  MG_CHECK(static_cast<int64_t>(tokens.size()) == input_.numel(), "generate: ", tokens.size(),
           " tokens for a step of batch ", input_.numel());
  Tensor host = from_vector(tokens, {input_.numel()});
  if (device_.is_cpu()) return step_(host);
  copy_inplace(input_, host.to(device_));  // into the fixed address the graph reads
  ++steps_;
  if (!use_graph_ || steps_ == 1) return step_(input_);  // the first step runs as is: kernels load, state settles
  if (!graph_.captured()) graph_.capture(device_, [&] { logits_ = step_(input_); });
  graph_.replay();
  return logits_;
}

}  // namespace mg::apps
