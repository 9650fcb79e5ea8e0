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
  LoadedModel out;
  if (!model_dir.empty()) {
    mamba::PretrainedModel pretrained = mamba::load_pretrained(model_dir);
    if (!pretrained.info.unknown_keys.empty()) {
      std::string keys;
      for (const std::string& k : pretrained.info.unknown_keys) keys += (keys.empty() ? "" : ", ") + k;
      std::fprintf(stderr, "note: %s/config.json: keys not used here: %s\n", model_dir.c_str(), keys.c_str());
    }
    out.model = pretrained.model;
    out.tokenizer_json = tokenizer_json_of(model_dir);
    auto bpe = std::make_unique<text::BpeTokenizer>(
        text::BpeTokenizer::from_json(out.tokenizer_json, (fs::path(model_dir) / "tokenizer.json").string()));
    out.eos_token_id = pretrained.info.eos_token_id ? pretrained.info.eos_token_id : bpe->token_id("<|endoftext|>");
    out.tokenizer = std::move(bpe);
  } else {
    LoadedCheckpoint loaded = load_checkpoint(checkpoint);
    out.model = model_from_checkpoint(loaded);
    out.tokenizer = tokenizer_from_checkpoint(loaded.info);
    out.tokenizer_json = loaded.info.tokenizer_json;
    if (auto* bpe = dynamic_cast<text::BpeTokenizer*>(out.tokenizer.get())) out.eos_token_id = bpe->token_id("<|endoftext|>");
  }
  MG_CHECK(out.tokenizer->vocab_size() <= out.model->backbone->embeddings->num_embeddings, "the tokenizer has ",
           out.tokenizer->vocab_size(), " tokens but the model only ", out.model->backbone->embeddings->num_embeddings);
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
