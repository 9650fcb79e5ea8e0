#pragma once
#include <CLI/CLI.hpp>

namespace mg::apps {
// `mambagrad train`: trains a Mamba (--model mamba, the default) or GPT (--model gpt) character
// model on TinyShakespeare (or --data).
void add_train_command(CLI::App& app);
}  // namespace mg::apps
