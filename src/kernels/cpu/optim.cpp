// Fused CPU optimizer updates: each element of a parameter and its state is read and written
// once per step. Each loop follows the composite update in src/optim element by element.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "kernels/cpu/vec_math.h"
#include "kernels/optim.h"
#include "moxing/core/parallel.h"

namespace moxing::kernels::cpu {
namespace {

constexpr int64_t kOptimGrain = 16384;

// Adam/AdamW, element by element in the order of torch's single-tensor Adam:
//   g = maximize ? -grad : grad;  p *= 1 - lr wd (AdamW) or g += wd p (Adam)
//   m = lerp(m, g, 1 - beta1);  v = beta2 v + (1 - beta2) g^2;  vmax = max(vmax, v)
//   p += -lr / (1 - beta1^t) * m / (sqrt(v or vmax) / sqrt(1 - beta2^t) + eps)
// The element loop, given the per-step constants; built per ISA for f32 below.
template <class T>
struct AdamConsts {
  T neg_step_size, bias_correction2_sqrt, decay, wd, w1, beta2, w2, eps;
  bool decay_param, decay_grad, maximize;
};

template <class T>
__attribute__((always_inline)) inline void adam_range(T* p, const T* gr, T* m, T* v, T* vmax,
                                                      const AdamConsts<T>& c, int64_t begin,
                                                      int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    T g = c.maximize ? -gr[i] : gr[i];
    T pi = p[i];
    if (c.decay_param) pi = pi * c.decay;
    if (c.decay_grad) g = g + c.wd * pi;
    m[i] = lerp_scalar(m[i], g, c.w1);
    v[i] = v[i] * c.beta2 + c.w2 * g * g;
    T second = v[i];
    if (vmax != nullptr) {
      vmax[i] = std::max(vmax[i], v[i]);
      second = vmax[i];
    }
    T denom = std::sqrt(second) / c.bias_correction2_sqrt + c.eps;
    p[i] = pi + c.neg_step_size * (m[i] / denom);
  }
}

// AdamW without amsgrad or maximize (the usual case) in f32, branch-free so that it
// vectorizes: the same operations in the same order as adam_range.
__attribute__((always_inline)) inline void adamw_f32_range(float* p, const float* gr, float* m,
                                                           float* v, const AdamConsts<float>& c,
                                                           int64_t begin, int64_t end) {
  const bool near_a = c.w1 < 0.5f && c.w1 > -0.5f;  // lerp_scalar's branch, fixed per step
  for (int64_t i = begin; i < end; ++i) {
    float g = gr[i];
    float pi = p[i] * c.decay;
    float mi = m[i];
    mi = near_a ? mi + c.w1 * (g - mi) : g - (g - mi) * (1.0f - c.w1);
    m[i] = mi;
    float vi = v[i] * c.beta2 + c.w2 * g * g;
    v[i] = vi;
    float denom = std::sqrt(vi) / c.bias_correction2_sqrt + c.eps;
    p[i] = pi + c.neg_step_size * (mi / denom);
  }
}

MOXING_TARGET_AVX512 void adamw_f32_avx512(float* p, const float* g, float* m, float* v,
                                           const AdamConsts<float>& c, int64_t b, int64_t e) {
  adamw_f32_range(p, g, m, v, c, b, e);
}
MOXING_TARGET_AVX2 void adamw_f32_avx2(float* p, const float* g, float* m, float* v,
                                       const AdamConsts<float>& c, int64_t b, int64_t e) {
  adamw_f32_range(p, g, m, v, c, b, e);
}

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
  AdamConsts<T> c;
  c.neg_step_size = static_cast<T>(-(a.lr / bias_correction1));
  c.bias_correction2_sqrt = static_cast<T>(std::pow(bias_correction2, 0.5));
  c.decay = static_cast<T>(1.0 - a.lr * a.weight_decay);
  c.wd = static_cast<T>(a.weight_decay);
  c.w1 = static_cast<T>(1.0 - a.beta1);
  c.beta2 = static_cast<T>(a.beta2);
  c.w2 = static_cast<T>(1.0 - a.beta2);
  c.eps = static_cast<T>(a.eps);
  c.decay_param = a.weight_decay != 0.0 && a.decoupled_weight_decay;
  c.decay_grad = a.weight_decay != 0.0 && !a.decoupled_weight_decay;
  c.maximize = a.maximize;
  bool fast = false;
  if constexpr (std::is_same_v<T, float>) {
    // decay 1 (no weight decay) multiplies by 1.0f exactly, so the fast loop covers it too
    fast = vmax == nullptr && !a.maximize && !c.decay_grad && cpu_level() != CpuLevel::base;
    if (!c.decay_param) c.decay = 1.0f;
  }
  parallel_for(0, param.numel(), kOptimGrain, [&](int64_t begin, int64_t end) {
    if constexpr (std::is_same_v<T, float>) {
      if (fast) {
        if (cpu_level() == CpuLevel::avx512) return adamw_f32_avx512(p, gr, m, v, c, begin, end);
        return adamw_f32_avx2(p, gr, m, v, c, begin, end);
      }
    }
    adam_range(p, gr, m, v, vmax, c, begin, end);
  });
}

// SGD, in the order of torch's single-tensor SGD:
//   g = maximize ? -grad : grad;  g += wd p;  buf = g (first step) or momentum buf + (1 - d) g
//   g = nesterov ? g + momentum buf : buf;  p += -lr g
template <class T>
void sgd_step(Tensor& param, const Tensor& grad, Tensor& momentum_buffer, const SgdStepArgs& a) {
  T* p = param.data<T>();
  const T* gr = grad.data<T>();
  T* buf = a.momentum != 0.0 ? momentum_buffer.data<T>() : nullptr;
  const T neg_lr = static_cast<T>(-a.lr);
  const T wd = static_cast<T>(a.weight_decay);
  const T momentum = static_cast<T>(a.momentum);
  const T keep = static_cast<T>(1.0 - a.dampening);
  parallel_for(0, param.numel(), kOptimGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      T g = a.maximize ? -gr[i] : gr[i];
      if (a.weight_decay != 0.0) g = g + wd * p[i];
      if (buf != nullptr) {
        buf[i] = a.first_step ? g : buf[i] * momentum + keep * g;
        g = a.nesterov ? g + momentum * buf[i] : buf[i];
      }
      p[i] = p[i] + neg_lr * g;
    }
  });
}

// RMSprop, in the order of torch's single-tensor RMSprop:
//   v = alpha v + (1 - alpha) g^2;  ga = lerp(ga, g, 1 - alpha) (centered)
//   avg = sqrt(v - ga^2 or v) + eps;  buf = momentum buf + g / avg, p += -lr buf
//   (momentum > 0), else p += -lr g / avg
template <class T>
void rmsprop_step(Tensor& param, const Tensor& grad, Tensor& square_avg, Tensor& grad_avg,
                  Tensor& momentum_buffer, const RmspropStepArgs& a) {
  T* p = param.data<T>();
  const T* gr = grad.data<T>();
  T* v = square_avg.data<T>();
  T* ga = a.centered ? grad_avg.data<T>() : nullptr;
  T* buf = a.momentum > 0.0 ? momentum_buffer.data<T>() : nullptr;
  const T neg_lr = static_cast<T>(-a.lr);
  const T wd = static_cast<T>(a.weight_decay);
  const T alpha = static_cast<T>(a.alpha);
  const T w = static_cast<T>(1.0 - a.alpha);
  const T eps = static_cast<T>(a.eps);
  const T momentum = static_cast<T>(a.momentum);
  parallel_for(0, param.numel(), kOptimGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      T g = a.maximize ? -gr[i] : gr[i];
      if (a.weight_decay != 0.0) g = g + wd * p[i];
      v[i] = v[i] * alpha + w * g * g;
      T avg;
      if (ga != nullptr) {
        ga[i] = lerp_scalar(ga[i], g, w);
        avg = std::sqrt(v[i] - ga[i] * ga[i]) + eps;
      } else {
        avg = std::sqrt(v[i]) + eps;
      }
      if (buf != nullptr) {
        buf[i] = buf[i] * momentum + g / avg;
        p[i] = p[i] + neg_lr * buf[i];
      } else {
        p[i] = p[i] + neg_lr * (g / avg);
      }
    }
  });
}

// Adagrad (dense), in the order of torch's single-tensor Adagrad:
//   g = maximize ? -grad : grad;  g += wd p;  sum += g^2;  p += -clr g / (sqrt(sum) + eps)
template <class T>
void adagrad_step(Tensor& param, const Tensor& grad, Tensor& sum, const AdagradStepArgs& a) {
  T* p = param.data<T>();
  const T* gr = grad.data<T>();
  T* s = sum.data<T>();
  const T neg_clr = static_cast<T>(-a.clr);
  const T wd = static_cast<T>(a.weight_decay);
  const T eps = static_cast<T>(a.eps);
  parallel_for(0, param.numel(), kOptimGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      T g = a.maximize ? -gr[i] : gr[i];
      if (a.weight_decay != 0.0) g = g + wd * p[i];
      s[i] = s[i] + g * g;
      p[i] = p[i] + neg_clr * (g / (std::sqrt(s[i]) + eps));
    }
  });
}

}  // namespace

MOXING_REGISTER_KERNEL(adam_step, cpu, f32, adam_step<float>);
MOXING_REGISTER_KERNEL(adam_step, cpu, f64, adam_step<double>);
MOXING_REGISTER_KERNEL(sgd_step, cpu, f32, sgd_step<float>);
MOXING_REGISTER_KERNEL(sgd_step, cpu, f64, sgd_step<double>);
MOXING_REGISTER_KERNEL(rmsprop_step, cpu, f32, rmsprop_step<float>);
MOXING_REGISTER_KERNEL(rmsprop_step, cpu, f64, rmsprop_step<double>);
MOXING_REGISTER_KERNEL(adagrad_step, cpu, f32, adagrad_step<float>);
MOXING_REGISTER_KERNEL(adagrad_step, cpu, f64, adagrad_step<double>);

}  // namespace moxing::kernels::cpu
