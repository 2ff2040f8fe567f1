// `moxing bench`: roofline numbers for this machine (FMA peak, triad bandwidth) beside what
// moxing reaches (sgemm, elementwise add, softmax), all measured in the same run.
#pragma once

namespace moxing::tools {

struct BenchOptions {
  bool json = false;
  int threads = 0;  // 0: keep the configured pool size
  bool quick = false;
};

/// Runs the benchmarks and prints a table (or JSON); returns the process exit code.
int run_bench(const BenchOptions& opt);

}  // namespace moxing::tools
