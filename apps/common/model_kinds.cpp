#include "apps/common/model_kinds.h"

#include "models/gpt/model.h"
#include "models/mamba/model.h"

namespace mg::apps {

const std::vector<std::string>& model_kinds() {
  static const std::vector<std::string> kinds{"mamba", "gpt"};
  return kinds;
}

std::shared_ptr<LanguageModel> make_model(const std::string& kind, const std::string& config_json, Generator& gen) {
  if (kind == "mamba") return std::make_shared<mamba::MambaLM>(mamba::MambaConfig::from_json(config_json), gen);
  if (kind == "gpt") return std::make_shared<gpt::GPT>(gpt::GPTConfig::from_json(config_json), gen);
  throw Error(str("unknown model kind \"", kind, "\" (known: mamba, gpt)"));
}

int64_t model_num_parameters(const std::string& kind, const std::string& config_json) {
  if (kind == "mamba") return mamba::MambaConfig::from_json(config_json).num_parameters();
  if (kind == "gpt") return gpt::GPTConfig::from_json(config_json).num_parameters();
  throw Error(str("unknown model kind \"", kind, "\" (known: mamba, gpt)"));
}

}  // namespace mg::apps
