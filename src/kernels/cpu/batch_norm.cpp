// CPU batch_norm, forward and backward, one channel per loop iteration: every sum over a
// channel's B*L values runs in one thread in a fixed order (accumulated in double), so results
// are the same for any thread count.
#include <algorithm>
#include <cmath>

#include "kernels/batch_norm.h"
#include "moxing/core/parallel.h"

namespace moxing::kernels::cpu {
namespace {

int64_t grain_for(int64_t per_channel) {
  return std::max<int64_t>(1, 16384 / std::max<int64_t>(per_channel, 1));
}

// y = (x - mean) * rstd * w + b, rstd = 1 / sqrt(var + eps); in training mean and the biased
// var are taken over the B*L values of each channel
template <class T>
void batch_norm_forward(const Tensor& x, const Tensor& w, const Tensor& b, bool training, int64_t B,
                        int64_t C, int64_t L, double eps, Tensor& out, Tensor& mean, Tensor& var,
                        Tensor& rstd) {
  const T* px = x.data<T>();
  const T* pw = w.defined() ? w.data<T>() : nullptr;
  const T* pb = b.defined() ? b.data<T>() : nullptr;
  T* po = out.data<T>();
  T* pm = mean.data<T>();
  T* pv = var.data<T>();
  T* pr = rstd.data<T>();
  double n = static_cast<double>(B * L);
  parallel_for(0, C, grain_for(B * L), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      double m, v;
      if (training) {
        m = 0.0;
        for (int64_t bi = 0; bi < B; ++bi) {
          const T* xr = px + (bi * C + c) * L;
          for (int64_t l = 0; l < L; ++l) m += xr[l];
        }
        m /= n;
        v = 0.0;
        for (int64_t bi = 0; bi < B; ++bi) {
          const T* xr = px + (bi * C + c) * L;
          for (int64_t l = 0; l < L; ++l) {
            double d = xr[l] - m;
            v += d * d;
          }
        }
        v /= n;
        pm[c] = static_cast<T>(m);
        pv[c] = static_cast<T>(v);
      } else {
        m = pm[c];
        v = pv[c];
      }
      double s = 1.0 / std::sqrt(v + eps);
      pr[c] = static_cast<T>(s);
      for (int64_t bi = 0; bi < B; ++bi) {
        const T* xr = px + (bi * C + c) * L;
        T* yr = po + (bi * C + c) * L;
        for (int64_t l = 0; l < L; ++l) {
          T norm = static_cast<T>((xr[l] - m) * s);
          T y = pw != nullptr ? norm * pw[c] : norm;
          yr[l] = pb != nullptr ? y + pb[c] : y;
        }
      }
    }
  });
}

// With norm = (x - mean) rstd, per channel over its N = B*L values:
//   dw = sum(dout * norm), db = sum(dout),
//   training: dx = w rstd (dout - db / N - norm * dw / N)  (mean and var depend on x)
//   eval:     dx = w rstd dout                               (running stats are constants)
template <class T>
void batch_norm_backward(const Tensor& dout, const Tensor& x, const Tensor& mean,
                         const Tensor& rstd, const Tensor& w, bool training, int64_t B, int64_t C,
                         int64_t L, Tensor& dx, Tensor& dw, Tensor& db) {
  const T* pg = dout.data<T>();
  const T* px = x.data<T>();
  const T* pm = mean.data<T>();
  const T* pr = rstd.data<T>();
  const T* pw = w.defined() ? w.data<T>() : nullptr;
  T* pdx = dx.defined() ? dx.data<T>() : nullptr;
  T* pdw = dw.defined() ? dw.data<T>() : nullptr;
  T* pdb = db.defined() ? db.data<T>() : nullptr;
  double n = static_cast<double>(B * L);
  parallel_for(0, C, grain_for(B * L), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      T m = pm[c], s = pr[c];
      double sum_g = 0.0, sum_g_norm = 0.0;
      for (int64_t bi = 0; bi < B; ++bi) {
        const T* gr = pg + (bi * C + c) * L;
        const T* xr = px + (bi * C + c) * L;
        for (int64_t l = 0; l < L; ++l) {
          sum_g += gr[l];
          sum_g_norm += gr[l] * ((xr[l] - m) * s);
        }
      }
      if (pdw != nullptr) pdw[c] = static_cast<T>(sum_g_norm);
      if (pdb != nullptr) pdb[c] = static_cast<T>(sum_g);
      if (pdx == nullptr) continue;
      T scale = pw != nullptr ? pw[c] * s : s;
      T a = training ? static_cast<T>(sum_g / n) : T(0);
      T k = training ? static_cast<T>(sum_g_norm / n) : T(0);
      for (int64_t bi = 0; bi < B; ++bi) {
        const T* gr = pg + (bi * C + c) * L;
        const T* xr = px + (bi * C + c) * L;
        T* dr = pdx + (bi * C + c) * L;
        for (int64_t l = 0; l < L; ++l) {
          T norm = (xr[l] - m) * s;
          dr[l] = scale * (gr[l] - a - norm * k);
        }
      }
    }
  });
}

}  // namespace

MOXING_REGISTER_KERNEL(batch_norm_forward, cpu, f32, batch_norm_forward<float>);
MOXING_REGISTER_KERNEL(batch_norm_forward, cpu, f64, batch_norm_forward<double>);
MOXING_REGISTER_KERNEL(batch_norm_backward, cpu, f32, batch_norm_backward<float>);
MOXING_REGISTER_KERNEL(batch_norm_backward, cpu, f64, batch_norm_backward<double>);

}  // namespace moxing::kernels::cpu
