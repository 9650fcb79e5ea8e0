#pragma once
// `mambagrad demo`: fits sin(x) with a small MLP built from the library's ops and autograd alone.
namespace CLI {
class App;
}

namespace mg::apps {

// Adds the `demo` subcommand (its options, --help and what it runs) to the program.
void add_demo_command(CLI::App& app);

}  // namespace mg::apps
