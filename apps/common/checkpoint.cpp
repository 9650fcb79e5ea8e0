#include "apps/common/checkpoint.h"

#include <nlohmann/json.hpp>

#include "nn/safetensors.h"
#include "text/bpe_tokenizer.h"

namespace mg::apps {

namespace {
constexpr const char* kFormat = "mambagrad-checkpoint-v1";
constexpr const char* kOptimizerPrefix = "optimizer.";

const std::string& required(const nn::SafetensorsMetadata& metadata, const std::string& key, const std::string& path) {
  auto it = metadata.find(key);
  MG_CHECK(it != metadata.end(), "checkpoint ", path, ": metadata lacks \"", key, "\"");
  return it->second;
}
}  // namespace

void save_checkpoint(const std::string& path, const mamba::MambaLM& model, const optim::Optimizer* optimizer,
                     const CheckpointInfo& info) {
  nn::StateDict tensors = model.state_dict();
  if (optimizer) tensors.update(optimizer->state_dict().with_prefix(kOptimizerPrefix));
  nlohmann::json rng = nlohmann::json::array();
  for (uint64_t word : info.rng_state) rng.push_back(std::to_string(word));  // JSON numbers lose 64-bit precision
  nn::SafetensorsMetadata metadata{{"format", kFormat},
                                   {"config", info.config.to_json()},
                                   {"vocabulary", info.vocabulary},
                                   {"step", std::to_string(info.step)},
                                   {"rng_state", rng.dump()},
                                   {"train_options", info.train_options}};
  if (!info.tokenizer_json.empty()) metadata["tokenizer"] = info.tokenizer_json;
  nn::save_safetensors(path, tensors, metadata);
}

LoadedCheckpoint load_checkpoint(const std::string& path) {
  nn::SafetensorsContents contents = nn::load_safetensors(path);
  const auto& metadata = contents.metadata;
  auto format = metadata.find("format");
  MG_CHECK(format != metadata.end() && format->second == kFormat, "checkpoint ", path,
           ": not a mambagrad checkpoint (metadata format is ",
           format == metadata.end() ? std::string("missing") : "\"" + format->second + "\"", ")");
  LoadedCheckpoint out;
  out.info.config = mamba::MambaConfig::from_json(required(metadata, "config", path));
  out.info.vocabulary = required(metadata, "vocabulary", path);
  try {
    out.info.step = std::stoll(required(metadata, "step", path));
    auto rng = nlohmann::json::parse(required(metadata, "rng_state", path));
    MG_CHECK(rng.is_array() && rng.size() == 4, "checkpoint ", path, ": rng_state must hold 4 numbers");
    for (size_t i = 0; i < 4; ++i) out.info.rng_state[i] = std::stoull(rng[i].get<std::string>());
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(str("checkpoint ", path, ": malformed step or rng_state (", e.what(), ")"));
  }
  if (auto it = metadata.find("train_options"); it != metadata.end()) out.info.train_options = it->second;
  if (auto it = metadata.find("tokenizer"); it != metadata.end()) out.info.tokenizer_json = it->second;
  MG_CHECK(!out.info.tokenizer_json.empty() ||
               static_cast<int64_t>(out.info.vocabulary.size()) == out.info.config.vocab_size,
           "checkpoint ", path, ": the vocabulary has ", out.info.vocabulary.size(),
           " characters but the config says vocab_size ", out.info.config.vocab_size);
  for (const auto& [name, t] : contents.tensors) {
    if (name.rfind(kOptimizerPrefix, 0) == 0) out.optimizer.set(name.substr(std::string(kOptimizerPrefix).size()), t);
    else out.model.set(name, t);
  }
  return out;
}

std::unique_ptr<text::Tokenizer> tokenizer_from_checkpoint(const CheckpointInfo& info) {
  if (!info.tokenizer_json.empty())
    return std::make_unique<text::BpeTokenizer>(text::BpeTokenizer::from_json(info.tokenizer_json, "in the checkpoint"));
  return std::make_unique<CharTokenizer>(CharTokenizer::from_vocabulary(info.vocabulary));
}

std::shared_ptr<mamba::MambaLM> model_from_checkpoint(const LoadedCheckpoint& checkpoint) {
  Generator unused(0);  // the initial values are overwritten by the checkpoint's
  auto model = std::make_shared<mamba::MambaLM>(checkpoint.info.config, unused);
  model->load_state_dict(checkpoint.model, /*strict=*/true);
  return model;
}

}  // namespace mg::apps
