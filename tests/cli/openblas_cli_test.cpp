// The CLI never runs OpenBLAS's SSE3 fallback kernels on a CPU with AVX2: where OpenBLAS does not
// know the CPU model it restarts with OPENBLAS_CORETYPE set (tools/moxing/main.cpp).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "cli_run.h"

using moxing::testing::run_cli;

TEST(OpenblasCli, NoPrescottKernelsOnAnAvx2Cpu) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
    GTEST_SKIP() << "this CPU has no AVX2: OpenBLAS's SSE3 kernels are the right ones here";
  }
  auto r = run_cli("bench --quick --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  EXPECT_NE(j.at("openblas_core").get<std::string>(), "Prescott") << r.out;
#else
  GTEST_SKIP() << "x86-64 only";
#endif
}
