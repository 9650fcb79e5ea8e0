#pragma once
// A training checkpoint: one safetensors file holding the model's tensors under their own names
// (backbone.layers.0.mixer.A_log, ...), the optimizer's state under "optimizer.", and in the
// metadata what resuming needs: the model config, the tokenizer (a character vocabulary, or a
// pretrained model's tokenizer.json), the step, the batch sampler's random state and the training
// options. Written atomically.
#include <string>

#include <memory>

#include "apps/common/char_tokenizer.h"
#include "models/mamba/model.h"
#include "nn/optim/optimizer.h"
#include "tensor/random.h"

namespace mg::apps {

struct CheckpointInfo {
  mamba::MambaConfig config;
  std::string vocabulary;
  int64_t step = 0;             // optimizer updates done
  Generator::State rng_state{};  // of the batch sampler, after `step` batches
  std::string train_options;    // JSON, for the record (and to resume with the same options)
  std::string tokenizer_json;   // a fine-tuned pretrained model's tokenizer.json ("" = characters)
};

// The checkpoint's tokenizer: the BPE of tokenizer_json when there is one, else the characters.
std::unique_ptr<text::Tokenizer> tokenizer_from_checkpoint(const CheckpointInfo& info);

void save_checkpoint(const std::string& path, const mamba::MambaLM& model, const optim::Optimizer* optimizer,
                     const CheckpointInfo& info);

struct LoadedCheckpoint {
  CheckpointInfo info;
  nn::StateDict model;      // the model's tensors
  nn::StateDict optimizer;  // the optimizer's state (empty in a model-only file)
};
// Throws mg::Error naming the file when it is not a mambagrad checkpoint or is malformed.
LoadedCheckpoint load_checkpoint(const std::string& path);

// The model a checkpoint describes, with its weights loaded (strictly: every key must match).
std::shared_ptr<mamba::MambaLM> model_from_checkpoint(const LoadedCheckpoint& checkpoint);

}  // namespace mg::apps
