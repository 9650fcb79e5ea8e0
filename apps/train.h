#pragma once
#include <CLI/CLI.hpp>

namespace mg::apps {
// `mambagrad train`: trains a Mamba character model on TinyShakespeare (or --data).
void add_train_command(CLI::App& app);
}  // namespace mg::apps
