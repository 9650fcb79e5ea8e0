#pragma once
// A training checkpoint: one safetensors file holding the model's tensors under their own names
// (backbone.layers.0.mixer.A_log, transformer.h.0.attn.c_attn.weight, ...), the optimizer's state
// under "optimizer.", and in the metadata what resuming needs: the model's kind ("mamba", "gpt";
// files written before kinds existed are Mamba), its config, the tokenizer (a character
// vocabulary, or a BPE's tokenizer.json; files written before BPE existed hold characters), the
// step, the batch sampler's random state and the training options. Written atomically.
#include <memory>
#include <optional>
#include <string>

#include "apps/common/char_tokenizer.h"
#include "models/language_model.h"
#include "nn/optim/optimizer.h"
#include "tensor/random.h"

namespace mg::apps {

struct CheckpointInfo {
  std::string model_kind = "mamba";  // LanguageModel::kind()
  std::string config;                // LanguageModel::config_json()
  // The tokenizer: a BPE's tokenizer.json (a fine-tuned pretrained model's), or else the
  // characters of a character model (vocabulary is "" when tokenizer_json is set).
  std::string vocabulary;
  std::string tokenizer_json;
  int64_t step = 0;             // optimizer updates done
  Generator::State rng_state{};  // of the batch sampler, after `step` batches
  // LanguageModel::training_generator()'s state (dropout), for models that have one.
  std::optional<Generator::State> model_rng_state;
  std::string train_options;    // JSON, for the record (and to resume with the same options)
  std::string run_state;        // JSON: what else resuming needs to repeat the run (the trainer's)
};

// The kind and config are taken from `model` (info's are ignored).
void save_checkpoint(const std::string& path, const LanguageModel& model, const optim::Optimizer* optimizer,
                     const CheckpointInfo& info);

struct LoadedCheckpoint {
  std::string path;  // where it was read from (for messages)
  CheckpointInfo info;
  nn::StateDict model;      // the model's tensors
  nn::StateDict optimizer;  // the optimizer's state (empty in a model-only file)
};
// Throws mg::Error naming the file when it is not a mambagrad checkpoint or is malformed.
LoadedCheckpoint load_checkpoint(const std::string& path);

// The model a checkpoint describes (its kind and config), with its weights loaded (strictly: every
// key must match).
std::shared_ptr<LanguageModel> model_from_checkpoint(const LoadedCheckpoint& checkpoint);

// The checkpoint's tokenizer: the BPE of tokenizer_json when there is one, else the characters.
std::unique_ptr<text::Tokenizer> tokenizer_from_checkpoint(const CheckpointInfo& info);

}  // namespace mg::apps
