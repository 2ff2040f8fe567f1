// Runs the moxing binary (MOXING_CLI, defined for tests under tests/cli) and captures its
// exit code and output, stdout and stderr together.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace moxing::testing {

struct CliResult {
  int code;
  std::string out;
};

/// `moxing ARGS 2>&1` through the shell; code is -1 when the process did not exit normally.
inline CliResult run_cli(const std::string& args) {
  std::string cmd = std::string(MOXING_CLI) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  EXPECT_NE(p, nullptr) << cmd;
  if (p == nullptr) return {-1, ""};
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace moxing::testing
