// Timing helpers shared by the `moxing bench*` commands: a steady clock, the median of a set of
// times and repeated timed calls after a warm-up.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

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

}  // namespace moxing::tools
