#include "apps/common/checkpoint.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "apps/common/model_kinds.h"
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

void save_checkpoint(const std::string& path, const LanguageModel& model, const optim::Optimizer* optimizer,
                     const CheckpointInfo& info) {
  nn::StateDict tensors = model.state_dict();
  if (optimizer) tensors.update(optimizer->state_dict().with_prefix(kOptimizerPrefix));
  auto state_json = [](const Generator::State& state) {
    nlohmann::json words = nlohmann::json::array();
    for (uint64_t word : state) words.push_back(std::to_string(word));  // JSON numbers lose 64-bit precision
    return words.dump();
  };
  nn::SafetensorsMetadata metadata{{"format", kFormat},
                                   {"model_kind", model.kind()},
                                   {"config", model.config_json()},
                                   {"vocabulary", info.vocabulary},
                                   {"step", std::to_string(info.step)},
                                   {"rng_state", state_json(info.rng_state)},
                                   {"train_options", info.train_options}};
  if (info.model_rng_state) metadata["model_rng_state"] = state_json(*info.model_rng_state);
  if (!info.tokenizer_json.empty()) metadata["tokenizer"] = info.tokenizer_json;
  if (!info.run_state.empty()) metadata["run_state"] = info.run_state;
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
  out.path = path;
  if (auto kind = metadata.find("model_kind"); kind != metadata.end()) out.info.model_kind = kind->second;
  const auto& kinds = model_kinds();
  MG_CHECK(std::find(kinds.begin(), kinds.end(), out.info.model_kind) != kinds.end(), "checkpoint ", path,
           ": unknown model_kind \"", out.info.model_kind, "\" (known: mamba, gpt)");
  out.info.config = required(metadata, "config", path);
  out.info.vocabulary = required(metadata, "vocabulary", path);
  try {
    out.info.step = std::stoll(required(metadata, "step", path));
    auto parse_state = [&](const char* key, Generator::State& state) {
      auto words = nlohmann::json::parse(required(metadata, key, path));
      MG_CHECK(words.is_array() && words.size() == 4, "checkpoint ", path, ": ", key, " must hold 4 numbers");
      for (size_t i = 0; i < 4; ++i) state[i] = std::stoull(words[i].get<std::string>());
    };
    parse_state("rng_state", out.info.rng_state);
    if (metadata.count("model_rng_state") != 0) parse_state("model_rng_state", out.info.model_rng_state.emplace());
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(str("checkpoint ", path, ": malformed step, rng_state or model_rng_state (", e.what(), ")"));
  }
  if (auto it = metadata.find("train_options"); it != metadata.end()) out.info.train_options = it->second;
  if (auto it = metadata.find("tokenizer"); it != metadata.end()) out.info.tokenizer_json = it->second;
  if (auto it = metadata.find("run_state"); it != metadata.end()) out.info.run_state = it->second;
  for (const auto& [name, t] : contents.tensors) {
    if (name.rfind(kOptimizerPrefix, 0) == 0) out.optimizer.set(name.substr(std::string(kOptimizerPrefix).size()), t);
    else out.model.set(name, t);
  }
  return out;
}

std::shared_ptr<LanguageModel> model_from_checkpoint(const LoadedCheckpoint& checkpoint) {
  // The config decides what gets allocated: a damaged one must not ask for gigabytes that the file
  // does not hold (found with tests/fuzz/fuzz_checkpoint's target). The file's values bound it.
  int64_t in_file = 0;
  for (const auto& [name, t] : checkpoint.model) in_file += t.numel();
  int64_t expected = 0;
  try {
    expected = model_num_parameters(checkpoint.info.model_kind, checkpoint.info.config);
  } catch (const Error& e) {
    throw Error(str("checkpoint ", checkpoint.path, ": ", e.what()));
  }
  MG_CHECK(expected <= in_file, "checkpoint ", checkpoint.path, ": its config describes a model of ",
           expected == INT64_MAX ? std::string("more than 2^63") : std::to_string(expected),
           " parameters, but the file holds ", in_file, " model values (a damaged file, or not this model's)");
  Generator unused(0);  // the initial values are overwritten by the checkpoint's
  std::shared_ptr<LanguageModel> model;
  try {
    model = make_model(checkpoint.info.model_kind, checkpoint.info.config, unused);
  } catch (const Error& e) {
    throw Error(str("checkpoint ", checkpoint.path, ": ", e.what()));
  }
  model->load_state_dict(checkpoint.model, /*strict=*/true);
  return model;
}

std::unique_ptr<text::Tokenizer> tokenizer_from_checkpoint(const CheckpointInfo& info) {
  if (!info.tokenizer_json.empty())
    return std::make_unique<text::BpeTokenizer>(text::BpeTokenizer::from_json(info.tokenizer_json, "in the checkpoint"));
  return std::make_unique<CharTokenizer>(CharTokenizer::from_vocabulary(info.vocabulary));
}

}  // namespace mg::apps
