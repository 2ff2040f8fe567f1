// Timing helpers shared by the `moxing bench*` commands: a steady clock, the median of a set of
// times and repeated timed calls after a warm-up.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#include "moxing/core/parallel.h"

namespace moxing::tools {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// f() timed `repeats` times after one untimed call, in seconds.
template <class F>
std::vector<double> time_repeats(int64_t repeats, const F& f) {
  f();
  std::vector<double> times;
  for (int64_t i = 0; i < repeats; ++i) {
    auto t = Clock::now();
    f();
    times.push_back(seconds_since(t));
  }
  return times;
}

/// Best time of `reps` runs of f (after one warm-up run).
template <class F>
double best_time(int reps, const F& f) {
  f();
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    auto t0 = Clock::now();
    f();
    best = std::min(best, seconds_since(t0));
  }
  return best;
}

/// STREAM triad a = b + s c on n floats per array (far larger than the caches), in GB/s
/// (bytes = 3 arrays); the memory-bandwidth bound the benchmarks compare against.
inline double triad_gbps(int64_t n, int reps) {
  std::vector<float> a(static_cast<size_t>(n)), b(static_cast<size_t>(n), 1.0f),
      c(static_cast<size_t>(n), 2.0f);
  float* pa = a.data();
  const float* pb = b.data();
  const float* pc = c.data();
  const float s = 3.0f;
  double t = best_time(reps, [&] {
    parallel_for(0, n, 1 << 16, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) pa[i] = pb[i] + s * pc[i];
    });
  });
  return 3.0 * static_cast<double>(n) * sizeof(float) / t / 1e9;
}

}  // namespace moxing::tools
