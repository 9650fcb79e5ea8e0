// mambagrad: the command-line program. Each subcommand lives in its own file (apps/<name>.cpp,
// picked up by apps/CMakeLists.txt) and joins the program with one line in the list below.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <string>

#include "apps/demo.h"
#include "apps/export.h"
#include "apps/generate.h"
#include "apps/tokenize.h"
#include "apps/train.h"

int main(int argc, char** argv) {
  CLI::App app{"mambagrad: tensors, reverse-mode autograd and Mamba, from first principles"};
  app.require_subcommand(1);
  // Bad flags give one line, e.g. "error: --steps: Value 0 not in range [1 - 100000000] ...".
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return "error: " + std::string(e.what()) + " (see --help)\n";
  });

  // The subcommands, one line each.
  mg::apps::add_train_command(app);
  mg::apps::add_generate_command(app);
  mg::apps::add_demo_command(app);
  mg::apps::add_tokenize_command(app);
  mg::apps::add_export_command(app);

  try {
    app.parse(argc, argv);  // parses the flags, then runs the chosen subcommand's callback
  } catch (const CLI::ParseError& e) {
    return app.exit(e);  // --help prints and returns 0; a bad flag prints one line, returns non-zero
  } catch (const std::exception& e) {  // mg::Error from the library: a user mistake, said plainly
    std::fflush(stdout);  // what the command printed so far comes first
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
