#include "apps/common/model_loading.h"

#include <cstdio>
#include <filesystem>

#include "apps/common/checkpoint.h"
#include "apps/common/text_dataset.h"
#include "models/mamba/pretrained.h"
#include "text/bpe_tokenizer.h"

namespace mg::apps {

namespace fs = std::filesystem;

namespace {
std::string tokenizer_json_of(const std::string& model_dir) {
  const fs::path path = fs::path(model_dir) / "tokenizer.json";
  MG_CHECK(fs::exists(path), "pretrained: ", model_dir, " has no tokenizer.json (the model's tokenizer)");
  return read_text_file(path.string());
}
}  // namespace

LoadedModel load_model(const std::string& model_dir, const std::string& checkpoint) {
  if (model_dir.empty()) return load_model(load_checkpoint(checkpoint));
  mamba::PretrainedModel pretrained = mamba::load_pretrained(model_dir);
  if (!pretrained.info.unknown_keys.empty()) {
    std::string keys;
    for (const std::string& k : pretrained.info.unknown_keys) keys += (keys.empty() ? "" : ", ") + k;
    std::fprintf(stderr, "note: %s/config.json: keys not used here: %s\n", model_dir.c_str(), keys.c_str());
  }
  LoadedModel out;
  out.model = pretrained.model;
  out.tokenizer_json = tokenizer_json_of(model_dir);
  auto bpe = std::make_unique<text::BpeTokenizer>(
      text::BpeTokenizer::from_json(out.tokenizer_json, (fs::path(model_dir) / "tokenizer.json").string()));
  out.eos_token_id = pretrained.info.eos_token_id ? pretrained.info.eos_token_id : bpe->token_id("<|endoftext|>");
  MG_CHECK(bpe->vocab_size() <= out.model->vocab_size(), "pretrained: ", model_dir, "/tokenizer.json has ",
           bpe->vocab_size(), " tokens but the model only ", out.model->vocab_size());
  out.tokenizer = std::move(bpe);
  return out;
}

LoadedModel load_model(const LoadedCheckpoint& checkpoint) {
  LoadedModel out;
  out.model = model_from_checkpoint(checkpoint);
  out.tokenizer = tokenizer_from_checkpoint(checkpoint.info);
  out.tokenizer_json = checkpoint.info.tokenizer_json;
  if (auto* bpe = dynamic_cast<text::BpeTokenizer*>(out.tokenizer.get())) out.eos_token_id = bpe->token_id("<|endoftext|>");
  // A model may have more rows than its tokenizer has tokens (a padded vocabulary), never fewer.
  MG_CHECK(out.tokenizer->vocab_size() <= out.model->vocab_size(), "checkpoint ", checkpoint.path,
           ": its tokenizer has ", out.tokenizer->vocab_size(), " tokens but the ", checkpoint.info.model_kind,
           " config says vocab_size ", out.model->vocab_size());
  return out;
}

std::unique_ptr<text::Tokenizer> load_tokenizer(const std::string& model_dir, const std::string& tokenizer_file,
                                                const std::string& checkpoint) {
  if (!model_dir.empty())
    return std::make_unique<text::BpeTokenizer>(
        text::BpeTokenizer::from_json(tokenizer_json_of(model_dir), (fs::path(model_dir) / "tokenizer.json").string()));
  if (!tokenizer_file.empty()) return std::make_unique<text::BpeTokenizer>(text::BpeTokenizer::load(tokenizer_file));
  return tokenizer_from_checkpoint(load_checkpoint(checkpoint).info);
}

}  // namespace mg::apps
