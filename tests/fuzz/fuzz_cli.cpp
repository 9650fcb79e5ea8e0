// libFuzzer harness: the mambagrad program's flag parsing (apps/cli.h): every flag converted and
// validated, but the subcommand's action not run (it would train a model): once a subcommand's
// flags are parsed, a parse-complete callback throws Parsed, before the action's callback. The
// input is the argument list, separated by NUL bytes. A bad flag must end in CLI11's ParseError
// (the program prints it in one line) or mg::Error.
#include <cstdint>
#include <string>
#include <vector>

#include "apps/cli.h"
#include "tensor/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> args{"mambagrad"};
  std::string current;
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0) {
      args.push_back(current);
      current.clear();
    } else {
      current.push_back(static_cast<char>(data[i]));
    }
  }
  if (!current.empty()) args.push_back(current);
  if (args.size() > 64) return 0;  // a command line, not a stress test of CLI11's loops
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());

  struct Parsed {};
  CLI::App app{"mambagrad"};
  mg::apps::add_commands(app);
  for (CLI::App* command : app.get_subcommands({})) command->parse_complete_callback([] { throw Parsed{}; });
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const Parsed&) {
  } catch (const CLI::ParseError&) {
  } catch (const mg::Error&) {
  }
  return 0;
}
