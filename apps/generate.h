#pragma once
#include <CLI/CLI.hpp>

namespace mg::apps {
// `mambagrad generate`: samples text from a trained checkpoint, token by token.
void add_generate_command(CLI::App& app);
}  // namespace mg::apps
