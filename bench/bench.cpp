// Placeholder replaced below.
#include "bench.h"
namespace moxing::tools {
int run_bench(const BenchOptions&) { return 0; }
}  // namespace moxing::tools
