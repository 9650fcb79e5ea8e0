// mambagrad: the command-line program. Each subcommand lives in its own file (apps/<name>.cpp,
// picked up by apps/CMakeLists.txt) and joins the program with one line in the list below.
#include <CLI/CLI.hpp>
#include <csignal>
#include <string>

#include "apps/demo.h"
#include "apps/export.h"
#include "apps/generate.h"
#include "apps/tokenize.h"
#include "apps/train.h"
#include "tensor/error.h"

int main(int argc, char** argv) {
  // Under a file-size limit (ulimit -f) a write that passes it fails with EFBIG instead of the
  // default SIGXFSZ killing the program: a checkpoint that does not fit is one error line, and the
  // previous checkpoint stays intact (nn/atomic_file.h).
  std::signal(SIGXFSZ, SIG_IGN);
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

  // The flags are parsed, then the chosen subcommand's callback runs. --help prints and returns 0;
  // a bad flag prints one line and returns non-zero; an mg::Error from the library (a user
  // mistake) or any other exception becomes one "error:" line and exit code 1.
  return mg::run_main([&] {
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      return app.exit(e);
    }
    return 0;
  });
}
