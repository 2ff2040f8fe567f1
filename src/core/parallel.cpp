// Thread-pool size shared by OpenMP loops and OpenBLAS.
#include "moxing/core/parallel.h"

#include <cstdlib>
#include <thread>

#include "moxing/core/error.h"

extern "C" void openblas_set_num_threads(int num_threads);

namespace moxing {
namespace {

int initial_threads() {
  const char* env = std::getenv("MOXING_NUM_THREADS");
  if (env != nullptr && *env != '\0') {
    char* end = nullptr;
    long n = std::strtol(env, &end, 10);
    if (end != nullptr && *end == '\0' && n >= 1 && n <= 4096) return static_cast<int>(n);
    fail("MOXING_NUM_THREADS='{}' is not a thread count; set it to an integer >= 1", env);
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

int& threads_ref() {
  static int n = [] {
    int t = initial_threads();
    openblas_set_num_threads(t);
#ifdef _OPENMP
    omp_set_num_threads(t);
#endif
    return t;
  }();
  return n;
}

}  // namespace

int num_threads() { return threads_ref(); }

void set_num_threads(int n) {
  MOXING_CHECK(n >= 1, "set_num_threads: {} is not a thread count (need >= 1)", n);
  threads_ref() = n;
  openblas_set_num_threads(n);
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
}

}  // namespace moxing
