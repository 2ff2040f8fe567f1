// CPU softmax / log_softmax over the middle axis of (O, R, I), forward and backward.
// Rows (I == 1) take three unit-stride passes: max, exp + sum, scale. Other dims walk runs of
// columns with per-column accumulators, so the inner loop stays unit-stride over I. Sums
// accumulate in double; every column is computed the same way whatever the thread split.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/softmax_row.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/softmax.h"
#include "moxing/core/parallel.h"

namespace moxing::kernels::cpu {
namespace {

int64_t grain_for(int64_t R) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(R, 1)); }

// Calls f(o, i0, i1) for the column runs of (O, I) covered by flat column indices [b, e).
template <class F>
void for_column_runs(int64_t b, int64_t e, int64_t I, const F& f) {
  int64_t k = b;
  while (k < e) {
    int64_t o = k / I, i0 = k % I;
    int64_t i1 = std::min(I, i0 + (e - k));
    f(o, i0, i1);
    k += i1 - i0;
  }
}

// x (R), y (R): one contiguous f32 row. Lanes of 16 partial maxima and sums keep every loop
// vectorizable; the partial sums are added in double at the end.
__attribute__((always_inline)) inline void softmax_row_f32_body(const float* x, float* y, int64_t R,
                                                                bool log) {
  constexpr int64_t kLanes = 16;
  float mv[kLanes];
  for (int64_t j = 0; j < kLanes; ++j) mv[j] = -std::numeric_limits<float>::infinity();
  int64_t r = 0;
  for (; r + kLanes <= R; r += kLanes) {
    for (int64_t j = 0; j < kLanes; ++j) mv[j] = x[r + j] > mv[j] ? x[r + j] : mv[j];
  }
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < kLanes; ++j) m = std::max(m, mv[j]);
  for (; r < R; ++r) m = std::max(m, x[r]);
  if (m == -std::numeric_limits<float>::infinity()) m = 0.0f;  // all -inf: exp gives 0s
  float sv[kLanes] = {};
  r = 0;
  if (log) {
    for (; r + kLanes <= R; r += kLanes) {
      for (int64_t j = 0; j < kLanes; ++j) sv[j] += exp_f32(x[r + j] - m);
    }
  } else {
    for (; r + kLanes <= R; r += kLanes) {
      for (int64_t j = 0; j < kLanes; ++j) {
        float e = exp_f32(x[r + j] - m);
        y[r + j] = e;
        sv[j] += e;
      }
    }
  }
  double sum = 0.0;
  for (int64_t j = 0; j < kLanes; ++j) sum += sv[j];
  for (; r < R; ++r) {
    float e = exp_f32(x[r] - m);
    if (!log) y[r] = e;
    sum += e;
  }
  if (log) {
    const float shift = m + static_cast<float>(std::log(sum));
    for (int64_t k = 0; k < R; ++k) y[k] = x[k] - shift;
  } else {
    const float inv = static_cast<float>(1.0 / sum);
    for (int64_t k = 0; k < R; ++k) y[k] *= inv;
  }
}

MOXING_TARGET_AVX512 void softmax_row_f32_avx512(const float* x, float* y, int64_t R, bool log) {
  softmax_row_f32_body(x, y, R, log);
}
MOXING_TARGET_AVX2 void softmax_row_f32_avx2(const float* x, float* y, int64_t R, bool log) {
  softmax_row_f32_body(x, y, R, log);
}
void softmax_row_f32_base(const float* x, float* y, int64_t R, bool log) {
  softmax_row_f32_body(x, y, R, log);
}

}  // namespace

void softmax_row_f32(const float* x, float* y, int64_t R, bool log) {
  switch (cpu_level()) {
    case CpuLevel::avx512:
      return softmax_row_f32_avx512(x, y, R, log);
    case CpuLevel::avx2:
      return softmax_row_f32_avx2(x, y, R, log);
    case CpuLevel::base:
      return softmax_row_f32_base(x, y, R, log);
  }
}

namespace {

// x (R), y (R): one contiguous row
template <class T>
void softmax_row(const T* x, T* y, int64_t R, bool log) {
  if constexpr (std::is_same_v<T, float>) {
    softmax_row_f32(x, y, R, log);
    return;
  }
  T m = -std::numeric_limits<T>::infinity();
  for (int64_t r = 0; r < R; ++r) m = std::max(m, x[r]);
  double sum = 0.0;
  for (int64_t r = 0; r < R; ++r) {
    T e = std::exp(x[r] - m);
    if (!log) y[r] = e;
    sum += e;
  }
  if (log) {
    T log_sum = static_cast<T>(std::log(sum));
    for (int64_t r = 0; r < R; ++r) y[r] = (x[r] - m) - log_sum;
  } else {
    T inv = static_cast<T>(1.0 / sum);
    for (int64_t r = 0; r < R; ++r) y[r] *= inv;
  }
}

// x, y (R, I) blocks; columns [i0, i1)
template <class T>
void softmax_columns(const T* x, T* y, int64_t R, int64_t I, int64_t i0, int64_t i1, bool log) {
  size_t n = static_cast<size_t>(i1 - i0);
  std::vector<T> m(n, -std::numeric_limits<T>::infinity());
  std::vector<double> sum(n, 0.0);
  for (int64_t r = 0; r < R; ++r) {
    const T* xr = x + r * I + i0;
    for (size_t i = 0; i < n; ++i) m[i] = std::max(m[i], xr[i]);
  }
  for (int64_t r = 0; r < R; ++r) {
    const T* xr = x + r * I + i0;
    T* yr = y + r * I + i0;
    for (size_t i = 0; i < n; ++i) {
      T e = std::exp(xr[i] - m[i]);
      if (!log) yr[i] = e;
      sum[i] += e;
    }
  }
  for (int64_t r = 0; r < R; ++r) {
    const T* xr = x + r * I + i0;
    T* yr = y + r * I + i0;
    for (size_t i = 0; i < n; ++i) {
      yr[i] = log ? (xr[i] - m[i]) - static_cast<T>(std::log(sum[i]))
                  : yr[i] * static_cast<T>(1.0 / sum[i]);
    }
  }
}

template <class T>
void softmax_forward(const Tensor& x, int64_t O, int64_t R, int64_t I, bool log, Tensor& out) {
  const T* px = x.data<T>();
  T* py = out.data<T>();
  if (I == 1) {
    parallel_for(0, O, grain_for(R), [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) softmax_row(px + o * R, py + o * R, R, log);
    });
    return;
  }
  parallel_for(0, O * I, grain_for(R), [&](int64_t b, int64_t e) {
    for_column_runs(b, e, I, [&](int64_t o, int64_t i0, int64_t i1) {
      softmax_columns(px + o * R * I, py + o * R * I, R, I, i0, i1, log);
    });
  });
}

// g, y, dx (R): one contiguous row
template <class T>
void softmax_backward_row(const T* g, const T* y, T* dx, int64_t R, bool log) {
  double acc = 0.0;  // sum(g * y) for softmax, sum(g) for log_softmax
  for (int64_t r = 0; r < R; ++r) acc += log ? g[r] : g[r] * y[r];
  T a = static_cast<T>(acc);
  for (int64_t r = 0; r < R; ++r) dx[r] = log ? g[r] - std::exp(y[r]) * a : y[r] * (g[r] - a);
}

// g, y, dx (R, I) blocks; columns [i0, i1)
template <class T>
void softmax_backward_columns(const T* g, const T* y, T* dx, int64_t R, int64_t I, int64_t i0,
                              int64_t i1, bool log) {
  size_t n = static_cast<size_t>(i1 - i0);
  std::vector<double> acc(n, 0.0);  // sum(g * y) for softmax, sum(g) for log_softmax
  for (int64_t r = 0; r < R; ++r) {
    const T* gr = g + r * I + i0;
    const T* yr = y + r * I + i0;
    for (size_t i = 0; i < n; ++i) acc[i] += log ? gr[i] : gr[i] * yr[i];
  }
  for (int64_t r = 0; r < R; ++r) {
    const T* gr = g + r * I + i0;
    const T* yr = y + r * I + i0;
    T* dr = dx + r * I + i0;
    for (size_t i = 0; i < n; ++i) {
      T a = static_cast<T>(acc[i]);
      dr[i] = log ? gr[i] - std::exp(yr[i]) * a : yr[i] * (gr[i] - a);
    }
  }
}

template <class T>
void softmax_backward(const Tensor& g, const Tensor& y, int64_t O, int64_t R, int64_t I, bool log,
                      Tensor& dx) {
  const T* pg = g.data<T>();
  const T* py = y.data<T>();
  T* pd = dx.data<T>();
  if (I == 1) {
    parallel_for(0, O, grain_for(R), [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o)
        softmax_backward_row(pg + o * R, py + o * R, pd + o * R, R, log);
    });
    return;
  }
  parallel_for(0, O * I, grain_for(R), [&](int64_t b, int64_t e) {
    for_column_runs(b, e, I, [&](int64_t o, int64_t i0, int64_t i1) {
      int64_t base = o * R * I;
      softmax_backward_columns(pg + base, py + base, pd + base, R, I, i0, i1, log);
    });
  });
}

}  // namespace

MOXING_REGISTER_KERNEL(softmax_forward, cpu, f32, softmax_forward<float>);
MOXING_REGISTER_KERNEL(softmax_forward, cpu, f64, softmax_forward<double>);
MOXING_REGISTER_KERNEL(softmax_backward, cpu, f32, softmax_backward<float>);
MOXING_REGISTER_KERNEL(softmax_backward, cpu, f64, softmax_backward<double>);

}  // namespace moxing::kernels::cpu
