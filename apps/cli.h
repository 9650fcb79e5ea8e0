#pragma once
// The mambagrad program's command line: its subcommands and how errors are reported. main.cpp
// runs it; the flag-parsing fuzzer (tests/fuzz/fuzz_cli.cpp) parses with the same App.
#include <CLI/CLI.hpp>

namespace mg::apps {

// Adds every subcommand to `app` (one line each, in cli.cpp) and the one-line error format.
void add_commands(CLI::App& app);

// Parses the flags, then runs the chosen subcommand; returns the exit code. --help prints and
// returns 0; a bad flag prints one line and returns non-zero; an mg::Error from the library (a
// user mistake) or any other exception becomes one "error:" line and exit code 1.
int run_command_line(CLI::App& app, int argc, char** argv);

}  // namespace mg::apps
