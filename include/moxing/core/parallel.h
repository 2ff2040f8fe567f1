// One thread pool (OpenMP) for our loops and OpenBLAS. MOXING_NUM_THREADS sets its size
// (default: all cores). Results never depend on the thread count: work is split by index.
#pragma once

#include <algorithm>
#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace moxing {

/// Threads used by moxing loops and OpenBLAS.
int num_threads();
/// Sets the pool size for moxing loops and OpenBLAS (n >= 1).
void set_num_threads(int n);

/// Calls f(begin_i, end_i) on disjoint chunks covering [begin, end), in parallel when the
/// range holds more than `grain` items. Chunks depend only on the range and thread count.
template <class F>
void parallel_for(int64_t begin, int64_t end, int64_t grain, const F& f) {
  int64_t n = end - begin;
  if (n <= 0) return;
#ifdef _OPENMP
  int threads = num_threads();
  if (n > grain && threads > 1 && !omp_in_parallel()) {
    int64_t chunks = std::min<int64_t>(threads, (n + grain - 1) / std::max<int64_t>(grain, 1));
#pragma omp parallel num_threads(static_cast <int>(chunks))
    {
      int64_t tid = omp_get_thread_num();
      int64_t nt = omp_get_num_threads();
      int64_t per = (n + nt - 1) / nt;
      int64_t b = begin + tid * per;
      int64_t e = std::min(end, b + per);
      if (b < e) f(b, e);
    }
    return;
  }
#endif
  f(begin, end);
}

}  // namespace moxing
