// The moxing command-line tool: one binary, one subcommand per job. Each subcommand registers
// itself (MOXING_CLI_COMMAND in its own file), so main() names none of them.
#include <CLI/CLI.hpp>
#include <iostream>

#include "command.h"
#include "moxing/core/error.h"

namespace moxing::tools {

std::vector<CommandFactory>& command_factories() {
  static std::vector<CommandFactory> factories;
  return factories;
}

}  // namespace moxing::tools

int main(int argc, char** argv) {
  CLI::App app{"moxing: build, train, evaluate and run neural networks"};
  app.set_version_flag("--version", std::string("moxing ") + MOXING_VERSION);
  app.require_subcommand(0, 1);

  std::vector<moxing::tools::Command> commands;
  for (auto factory : moxing::tools::command_factories()) commands.push_back(factory(app));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (const auto& c : commands)
      if (c.app->parsed()) return c.run();
    std::cout << app.help();
    return 0;
  } catch (const moxing::Error& e) {
    std::cerr << "moxing: error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "moxing: error: " << e.what() << "\n";
    return 1;
  }
}
