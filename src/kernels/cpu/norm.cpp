// CPU layer_norm, forward and backward, in the shape of llm.c's layernorm_forward/backward.
// Row statistics accumulate in double; the f32 forward row runs per ISA with 16 f32 lanes of
// partial sums (each over C/16 elements) combined in double. The backward computes dx in parallel
// over rows and dw, db in parallel over columns, so no two threads add into one element and the
// sums are the same for any thread count.
#include <algorithm>
#include <cmath>
#include <vector>

#include <type_traits>

#include "kernels/cpu/vec_math.h"
#include "kernels/norm.h"
#include "moxing/core/parallel.h"

namespace moxing::kernels::cpu {
namespace {

int64_t grain_for(int64_t C) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(C, 1)); }

// One f32 row: x, w, b, y (C), w and b may be null; mean and rstd out.
__attribute__((always_inline)) inline void layer_norm_row_f32_body(const float* x, const float* w,
                                                                   const float* b, float* y,
                                                                   int64_t C, double eps,
                                                                   float* mean, float* rstd) {
  constexpr int64_t kLanes = 16;
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= C; i += kLanes) {
    for (int64_t l = 0; l < kLanes; ++l) acc[l] += x[i + l];
  }
  double sum = 0.0;
  for (int64_t l = 0; l < kLanes; ++l) sum += acc[l];
  for (; i < C; ++i) sum += x[i];
  const float m = static_cast<float>(sum / static_cast<double>(C));
  for (int64_t l = 0; l < kLanes; ++l) acc[l] = 0.0f;
  for (i = 0; i + kLanes <= C; i += kLanes) {
    for (int64_t l = 0; l < kLanes; ++l) {
      float d = x[i + l] - m;
      acc[l] += d * d;
    }
  }
  double var = 0.0;
  for (int64_t l = 0; l < kLanes; ++l) var += acc[l];
  for (; i < C; ++i) var += static_cast<double>(x[i] - m) * (x[i] - m);
  const float s = static_cast<float>(1.0 / std::sqrt(var / static_cast<double>(C) + eps));
  if (w != nullptr && b != nullptr) {
    for (i = 0; i < C; ++i) y[i] = (x[i] - m) * s * w[i] + b[i];
  } else {
    for (i = 0; i < C; ++i) {
      float v = (x[i] - m) * s;
      v = w != nullptr ? v * w[i] : v;
      y[i] = b != nullptr ? v + b[i] : v;
    }
  }
  *mean = m;
  *rstd = s;
}

#define MOXING_LAYER_NORM_ROW(suffix, attr)                                                       \
  attr void layer_norm_row_f32_##suffix(const float* x, const float* w, const float* b, float* y, \
                                        int64_t C, double eps, float* mean, float* rstd) {        \
    layer_norm_row_f32_body(x, w, b, y, C, eps, mean, rstd);                                      \
  }
MOXING_LAYER_NORM_ROW(avx512, MOXING_TARGET_AVX512)
MOXING_LAYER_NORM_ROW(avx2, MOXING_TARGET_AVX2)
MOXING_LAYER_NORM_ROW(base, __attribute__((noinline)))
#undef MOXING_LAYER_NORM_ROW

void layer_norm_row_f32(const float* x, const float* w, const float* b, float* y, int64_t C,
                        double eps, float* mean, float* rstd) {
  switch (cpu_level()) {
    case CpuLevel::avx512:
      return layer_norm_row_f32_avx512(x, w, b, y, C, eps, mean, rstd);
    case CpuLevel::avx2:
      return layer_norm_row_f32_avx2(x, w, b, y, C, eps, mean, rstd);
    case CpuLevel::base:
      return layer_norm_row_f32_base(x, w, b, y, C, eps, mean, rstd);
  }
}

// y = (x - mean) * rstd * w + b, rstd = 1 / sqrt(var + eps)
template <class T>
void layer_norm_forward(const Tensor& x, const Tensor& w, const Tensor& b, int64_t N, int64_t C,
                        double eps, Tensor& out, Tensor& mean, Tensor& rstd) {
  const T* px = x.data<T>();
  const T* pw = w.defined() ? w.data<T>() : nullptr;
  const T* pb = b.defined() ? b.data<T>() : nullptr;
  T* po = out.data<T>();
  T* pm = mean.data<T>();
  T* pr = rstd.data<T>();
  parallel_for(0, N, grain_for(C), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const T* xr = px + n * C;
      if constexpr (std::is_same_v<T, float>) {
        layer_norm_row_f32(xr, pw, pb, po + n * C, C, eps, pm + n, pr + n);
        continue;
      }
      double m = 0.0;
      for (int64_t i = 0; i < C; ++i) m += xr[i];
      m /= static_cast<double>(C);
      double v = 0.0;
      for (int64_t i = 0; i < C; ++i) {
        double d = xr[i] - m;
        v += d * d;
      }
      v /= static_cast<double>(C);
      double s = 1.0 / std::sqrt(v + eps);
      T* yr = po + n * C;
      for (int64_t i = 0; i < C; ++i) {
        T norm = static_cast<T>((xr[i] - m) * s);
        T y = pw != nullptr ? norm * pw[i] : norm;
        yr[i] = pb != nullptr ? y + pb[i] : y;
      }
      pm[n] = static_cast<T>(m);
      pr[n] = static_cast<T>(s);
    }
  });
}

// With norm = (x - mean) rstd and dnorm = dout * w:
//   dx = rstd (dnorm - mean(dnorm) - norm * mean(dnorm * norm)),
//   dw = sum over rows of dout * norm, db = sum over rows of dout.
template <class T>
void layer_norm_backward(const Tensor& dout, const Tensor& x, const Tensor& mean,
                         const Tensor& rstd, const Tensor& w, int64_t N, int64_t C, Tensor& dx,
                         Tensor& dw, Tensor& db) {
  const T* pg = dout.data<T>();
  const T* px = x.data<T>();
  const T* pm = mean.data<T>();
  const T* pr = rstd.data<T>();
  const T* pw = w.defined() ? w.data<T>() : nullptr;
  T* pdx = dx.data<T>();
  parallel_for(0, N, grain_for(C), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const T* gr = pg + n * C;
      const T* xr = px + n * C;
      T m = pm[n], s = pr[n];
      double dnorm_mean = 0.0, dnorm_norm_mean = 0.0;
      for (int64_t i = 0; i < C; ++i) {
        T norm = (xr[i] - m) * s;
        T dnorm = pw != nullptr ? gr[i] * pw[i] : gr[i];
        dnorm_mean += dnorm;
        dnorm_norm_mean += dnorm * norm;
      }
      T a = static_cast<T>(dnorm_mean / static_cast<double>(C));
      T c = static_cast<T>(dnorm_norm_mean / static_cast<double>(C));
      T* dr = pdx + n * C;
      for (int64_t i = 0; i < C; ++i) {
        T norm = (xr[i] - m) * s;
        T dnorm = pw != nullptr ? gr[i] * pw[i] : gr[i];
        dr[i] = (dnorm - a - norm * c) * s;
      }
    }
  });
  if (!dw.defined() && !db.defined()) return;
  T* pdw = dw.defined() ? dw.data<T>() : nullptr;
  T* pdb = db.defined() ? db.data<T>() : nullptr;
  parallel_for(0, C, std::max<int64_t>(1, 16384 / std::max<int64_t>(N, 1)),
               [&](int64_t c0, int64_t c1) {
                 size_t len = static_cast<size_t>(c1 - c0);
                 std::vector<double> acc_w(len, 0.0), acc_b(len, 0.0);
                 for (int64_t n = 0; n < N; ++n) {
                   const T* gr = pg + n * C;
                   const T* xr = px + n * C;
                   T m = pm[n], s = pr[n];
                   for (int64_t i = c0; i < c1; ++i) {
                     size_t k = static_cast<size_t>(i - c0);
                     acc_w[k] += gr[i] * ((xr[i] - m) * s);
                     acc_b[k] += gr[i];
                   }
                 }
                 for (int64_t i = c0; i < c1; ++i) {
                   size_t k = static_cast<size_t>(i - c0);
                   if (pdw != nullptr) pdw[i] = static_cast<T>(acc_w[k]);
                   if (pdb != nullptr) pdb[i] = static_cast<T>(acc_b[k]);
                 }
               });
}

}  // namespace

MOXING_REGISTER_KERNEL(layer_norm_forward, cpu, f32, layer_norm_forward<float>);
MOXING_REGISTER_KERNEL(layer_norm_forward, cpu, f64, layer_norm_forward<double>);
MOXING_REGISTER_KERNEL(layer_norm_backward, cpu, f32, layer_norm_backward<float>);
MOXING_REGISTER_KERNEL(layer_norm_backward, cpu, f64, layer_norm_backward<double>);

}  // namespace moxing::kernels::cpu
