#pragma once
#include <CLI/CLI.hpp>

namespace mg::apps {
void add_export_command(CLI::App& app);
}  // namespace mg::apps
