#pragma once
// The Mamba language model, read top-down: Config -> Block -> Backbone -> LM.
//   tokens (B, L) -> embeddings -> n_layer x [ x + mixer(RMSNorm(x)) ] -> RMSNorm -> logits
// The LM head is tied to the embedding (logits = h @ embeddings.weight^T). Names match the
// official checkpoints: backbone.embeddings.weight, backbone.layers.{i}.norm.weight,
// backbone.layers.{i}.mixer.*, backbone.norm_f.weight.
#include <vector>

#include "models/mamba/config.h"
#include "models/language_model.h"
#include "models/mamba/mixer.h"
#include "nn/containers.h"
#include "nn/embedding.h"
#include "nn/rms_norm.h"
#include "ops/mamba_step.h"

namespace mg::mamba {

// A pre-norm residual block: x + mixer(norm(x)).
class ResidualBlock : public nn::Module {
 public:
  ResidualBlock(const MambaConfig& config, Generator& gen);
  Tensor forward(const Tensor& x, MixerState* state = nullptr);  // x: (B, L, d_model)
  Tensor step(const Tensor& x, MixerState& state);                // x: (B, d_model)

  std::shared_ptr<nn::RMSNorm> norm;
  std::shared_ptr<MambaMixer> mixer;
};

class MambaBackbone : public nn::Module {
 public:
  MambaBackbone(const MambaConfig& config, Generator& gen);

  std::shared_ptr<nn::Embedding> embeddings;
  std::shared_ptr<nn::ModuleList> layers;  // of ResidualBlock
  std::shared_ptr<nn::RMSNorm> norm_f;
};

// Everything recurrent generation carries from one token to the next: one MixerState per layer,
// and the fused step's scratch memory (ops/mamba_step.h), allocated at the first step.
struct InferenceState {
  std::vector<MixerState> layers;
  Tensor workspace;
  // Bytes of the recurrent state proper (every layer's conv and SSM states): the same at every
  // position. The workspace is scratch, not state, and is not counted.
  int64_t state_bytes() const;
};

class MambaLM : public LanguageModel {
 public:
  // Builds the model with the official initialisation, drawing from `gen`.
  MambaLM(const MambaConfig& config, Generator& gen);

  // tokens (B, L) int64 -> logits (B, L, vocab). With `state`, also leaves there the states after
  // the last position, so step() can continue from a prompt processed in parallel.
  Tensor forward(const Tensor& tokens, InferenceState* state = nullptr);
  // Mean next-token cross-entropy of forward(inputs) against targets (B, L).
  Tensor loss(const Tensor& inputs, const Tensor& targets) override;

  // LanguageModel: generation processes the prompt in parallel, then steps (models/mamba/generation.cpp).
  std::string kind() const override { return "mamba"; }
  std::string config_json() const override { return config.to_json(); }
  int64_t vocab_size() const override { return config.vocab_size; }
  std::unique_ptr<GenerationSession> start_generation(int64_t batch) override;

  // Recurrent generation: O(1) work and memory per token. tokens (B) int64 -> logits (B, vocab).
  // step() runs the fused step op (ops/mamba_step.h) where it has a kernel for the model's and the
  // state's tensors; elsewhere (a GPU, where the step is replayed from a CUDA graph instead; a
  // state it cannot use), step_composed(): the same math from library ops, one op per line of the
  // paper. A = -exp(A_log) is computed at a state's first step and kept in it: a state continues
  // with the weights it started with; start a new one after changing them.
  InferenceState new_state(int64_t batch) const;
  Tensor step(const Tensor& tokens, InferenceState& state);
  Tensor step_composed(const Tensor& tokens, InferenceState& state);
  // What step() hands the fused op: the parameters and `state`'s tensors (computing A at a
  // state's first step), no layers when the state has the wrong number of them.
  MambaStepModel fused_step_inputs(InferenceState& state) const;

  const MambaConfig config;
  std::shared_ptr<MambaBackbone> backbone;

 private:
  ResidualBlock& layer(size_t i) const;
  Tensor logits(const Tensor& hidden) const;  // norm_f, then the tied head
};

}  // namespace mg::mamba
