// mambagrad: the command-line program. The subcommands and their flags are in apps/cli.cpp.
#include <csignal>

#include "apps/cli.h"

int main(int argc, char** argv) {
  // Under a file-size limit (ulimit -f) a write that passes it fails with EFBIG instead of the
  // default SIGXFSZ killing the program: a checkpoint that does not fit is one error line, and the
  // previous checkpoint stays intact (nn/atomic_file.h).
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"mambagrad: tensors, reverse-mode autograd and Mamba, from first principles"};
  mg::apps::add_commands(app);
  return mg::apps::run_command_line(app, argc, argv);
}
