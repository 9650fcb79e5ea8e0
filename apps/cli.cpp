// The subcommands: each lives in its own file (apps/<name>.cpp, picked up by apps/CMakeLists.txt)
// and joins the program with one line in add_commands().
#include "apps/cli.h"

#include <string>

#include "apps/demo.h"
#include "apps/export.h"
#include "apps/generate.h"
#include "apps/tokenize.h"
#include "apps/train.h"
#include "tensor/error.h"

namespace mg::apps {

void add_commands(CLI::App& app) {
  app.require_subcommand(1);
  // Bad flags give one line, e.g. "error: --steps: Value 0 not in range [1 - 100000000] ...".
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return "error: " + std::string(e.what()) + " (see --help)\n";
  });

  // The subcommands, one line each.
  add_train_command(app);
  add_generate_command(app);
  add_demo_command(app);
  add_tokenize_command(app);
  add_export_command(app);
}

int run_command_line(CLI::App& app, int argc, char** argv) {
  return run_main([&] {
    try {
      app.parse(argc, argv);  // parses the flags, then runs the chosen subcommand's callback
    } catch (const CLI::ParseError& e) {
      return app.exit(e);
    }
    return 0;
  });
}

}  // namespace mg::apps
