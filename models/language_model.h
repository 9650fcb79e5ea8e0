#pragma once
// What every language model in models/ offers the programs (apps/): a name for its kind, its
// config as JSON, the training loss, and generation one token at a time. The trainer, the
// checkpoint and `mambagrad generate` see only this, so one trainer and one checkpoint format
// serve every kind (models/mamba/, models/gpt/).
#include <memory>
#include <string>

#include "nn/module.h"
#include "tensor/random.h"

namespace mg {

// A generation in progress: the model's memory of the tokens fed so far (Mamba's recurrent
// state: constant size; a Transformer's KV cache: growing with the position). No autograd.
class GenerationSession {
 public:
  virtual ~GenerationSession() = default;
  // tokens (B, T) int64, continuing the sequence -> logits of its last position (B, vocab).
  virtual Tensor feed(const Tensor& tokens) = 0;
  virtual int64_t position() const = 0;     // tokens fed so far
  virtual int64_t state_bytes() const = 0;  // memory the session needs for its state right now
  // Whether the one-token step is fixed-shape and replayable: after the prompt, feed() of one
  // token per sequence (B, 1) runs the same work on tensors at the same addresses at every
  // position (the state updated in place, nothing growing with the position, no value read back
  // to the host), so a device may record it once and replay it for every later token (a CUDA
  // graph: apps/common/token_stepper.h). Mamba's recurrent step is; a KV cache growing with the
  // position is not, and runs eagerly. A replay repeats only the device work, not feed()'s
  // bookkeeping on the host: position() then counts the feed() calls, not the replays.
  virtual bool step_is_replayable() const { return false; }
};

class LanguageModel : public nn::Module {
 public:
  using nn::Module::Module;

  virtual std::string kind() const = 0;         // "mamba", "gpt": stored in checkpoints
  virtual std::string config_json() const = 0;  // the config that rebuilds this model
  virtual int64_t vocab_size() const = 0;
  // Mean next-token cross-entropy of inputs (B, L) against targets (B, L).
  virtual Tensor loss(const Tensor& inputs, const Tensor& targets) = 0;
  virtual std::unique_ptr<GenerationSession> start_generation(int64_t batch) = 0;
  // The generator the model draws from while training (dropout masks), or null when it draws
  // nothing. Checkpoints keep its state, so that a resumed run repeats an unbroken one.
  virtual Generator* training_generator() { return nullptr; }
};

}  // namespace mg
