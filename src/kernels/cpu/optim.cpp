// Fused CPU optimizer updates: each element of a parameter is read and written once.
#include <algorithm>
#include <cmath>

#include "kernels/optim.h"
#include "moxing/core/parallel.h"

namespace moxing::kernels::cpu {
namespace {

constexpr int64_t kOptimGrain = 16384;

// Adam/AdamW, element by element in the order of torch's single-tensor Adam:
//   g = maximize ? -grad : grad;  p *= 1 - lr wd (AdamW) or g += wd p (Adam)
//   m = lerp(m, g, 1 - beta1);  v = beta2 v + (1 - beta2) g^2;  vmax = max(vmax, v)
//   p += -lr / (1 - beta1^t) * m / (sqrt(v or vmax) / sqrt(1 - beta2^t) + eps)
template <class T>
void adam_step(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq,
               Tensor& max_exp_avg_sq, const AdamStepArgs& a) {
  T* p = param.data<T>();
  const T* gr = grad.data<T>();
  T* m = exp_avg.data<T>();
  T* v = exp_avg_sq.data<T>();
  T* vmax = a.amsgrad ? max_exp_avg_sq.data<T>() : nullptr;
  const double bias_correction1 = 1.0 - std::pow(a.beta1, a.step);
  const double bias_correction2 = 1.0 - std::pow(a.beta2, a.step);
  const T neg_step_size = static_cast<T>(-(a.lr / bias_correction1));
  const T bias_correction2_sqrt = static_cast<T>(std::pow(bias_correction2, 0.5));
  const T decay = static_cast<T>(1.0 - a.lr * a.weight_decay);
  const T wd = static_cast<T>(a.weight_decay);
  const T w1 = static_cast<T>(1.0 - a.beta1);
  const T beta2 = static_cast<T>(a.beta2);
  const T w2 = static_cast<T>(1.0 - a.beta2);
  const T eps = static_cast<T>(a.eps);
  const bool decay_param = a.weight_decay != 0.0 && a.decoupled_weight_decay;
  const bool decay_grad = a.weight_decay != 0.0 && !a.decoupled_weight_decay;
  parallel_for(0, param.numel(), kOptimGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      T g = a.maximize ? -gr[i] : gr[i];
      T pi = p[i];
      if (decay_param) pi = pi * decay;
      if (decay_grad) g = g + wd * pi;
      m[i] = lerp_scalar(m[i], g, w1);
      v[i] = v[i] * beta2 + w2 * g * g;
      T second = v[i];
      if (vmax != nullptr) {
        vmax[i] = std::max(vmax[i], v[i]);
        second = vmax[i];
      }
      T denom = std::sqrt(second) / bias_correction2_sqrt + eps;
      p[i] = pi + neg_step_size * (m[i] / denom);
    }
  });
}

}  // namespace

MOXING_REGISTER_KERNEL(adam_step, cpu, f32, adam_step<float>);
MOXING_REGISTER_KERNEL(adam_step, cpu, f64, adam_step<double>);

}  // namespace moxing::kernels::cpu
