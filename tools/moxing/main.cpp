// The moxing command-line tool: one binary, one subcommand per job. Each subcommand registers
// itself (MOXING_CLI_COMMAND in its own file), so main() names none of them.
#include <cblas.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>
#include <string>

#include "command.h"
#include "moxing/core/error.h"

namespace moxing::tools {

std::vector<CommandFactory>& command_factories() {
  static std::vector<CommandFactory> factories;
  return factories;
}

}  // namespace moxing::tools

namespace {

// OpenBLAS chooses its kernels when it loads, from the CPU model it knows; Debian 12's 0.3.21 does
// not know newer CPUs (a Sapphire Rapids Xeon among them) and falls back to its SSE3 "Prescott"
// kernels, 4-6x slower at sgemm. When that happened on a CPU with AVX2 or AVX-512, the process
// restarts once with OPENBLAS_CORETYPE naming the newest kernel family the CPU runs (a user's
// own OPENBLAS_CORETYPE is left alone).
void restart_with_openblas_kernels(char** argv) {
#if defined(__x86_64__)
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return;
  const char* core = openblas_get_corename();
  if (core == nullptr || std::string(core) != "Prescott") return;
  __builtin_cpu_init();
  const char* better = nullptr;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
    better = "SkylakeX";
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    better = "Haswell";
  }
  if (better == nullptr) return;
  ::setenv("OPENBLAS_CORETYPE", better, 1);
  ::execv("/proc/self/exe", argv);  // returns only on failure: carry on with Prescott
  ::unsetenv("OPENBLAS_CORETYPE");
#else
  (void)argv;
#endif
}

}  // namespace

int main(int argc, char** argv) {
  restart_with_openblas_kernels(argv);
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
