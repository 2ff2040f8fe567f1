// Subcommands that register themselves: a file under tools/moxing/ adds a command to the
// `moxing` binary with MOXING_CLI_COMMAND and no line in main.cpp.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

namespace moxing::tools {

/// A registered subcommand: app is its CLI11 node, run is called when it was parsed and
/// returns the exit code.
struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

/// Adds the subcommand (its options bound to state the returned run captures) to app.
using CommandFactory = Command (*)(CLI::App& app);

/// Factories in registration order; main() sorts the commands by name.
std::vector<CommandFactory>& command_factories();

struct CommandRegistrar {
  explicit CommandRegistrar(CommandFactory f) { command_factories().push_back(f); }
};

}  // namespace moxing::tools

/// MOXING_CLI_COMMAND(add_generate_command) at namespace scope in a tools/moxing/*.cpp file.
#define MOXING_CLI_COMMAND(factory) \
  static const ::moxing::tools::CommandRegistrar moxing_cli_command_##factory { factory }
