#pragma once
// The kinds of language model the programs train and sample ("mamba", "gpt"): one place that
// maps a kind's name and config JSON to a model, so the trainer, checkpoints and `generate` stay
// kind-agnostic (they see models/language_model.h).
#include <memory>
#include <string>
#include <vector>

#include "models/language_model.h"
#include "tensor/random.h"

namespace mg::apps {

const std::vector<std::string>& model_kinds();  // {"mamba", "gpt"}

// A model of `kind` built from its config JSON (the kind's own fields, e.g. MambaConfig's),
// initialised from `gen`. Throws mg::Error naming the kind when it is unknown or the config invalid.
std::shared_ptr<LanguageModel> make_model(const std::string& kind, const std::string& config_json, Generator& gen);

// The parameter count such a model would have, without building it (INT64_MAX when it overflows):
// a loader compares it with the values a file holds before allocating anything.
int64_t model_num_parameters(const std::string& kind, const std::string& config_json);

}  // namespace mg::apps
