#pragma once
// A model and its tokenizer, from where the commands find them: a Hugging Face Mamba directory
// (--model DIR: config.json, weights, tokenizer.json) or one of our checkpoints (--checkpoint),
// of any model kind.
#include <memory>
#include <optional>
#include <string>

#include "apps/common/checkpoint.h"
#include "models/language_model.h"
#include "text/tokenizer.h"

namespace mg::apps {

struct LoadedModel {
  std::shared_ptr<LanguageModel> model;
  std::unique_ptr<text::Tokenizer> tokenizer;
  std::optional<int64_t> eos_token_id;  // generation stops there (a pretrained model's end of text)
  std::string tokenizer_json;           // the BPE's file as text ("" for a character model)
};

// Exactly one of model_dir and checkpoint is non-empty (the command checks). A pretrained
// directory's config keys that mean nothing here are printed to stderr as a note.
LoadedModel load_model(const std::string& model_dir, const std::string& checkpoint);
// The model and tokenizer of a checkpoint already read. Throws mg::Error naming the file when
// the tokenizer has more tokens than the model has rows.
LoadedModel load_model(const LoadedCheckpoint& checkpoint);

// The tokenizer alone: from a model directory, a tokenizer.json, or a checkpoint (one non-empty).
std::unique_ptr<text::Tokenizer> load_tokenizer(const std::string& model_dir, const std::string& tokenizer_file,
                                                const std::string& checkpoint);

}  // namespace mg::apps
