// Elementwise kernel tables and the scalar math shared by every device.
// Unary kernels: x and out have the same shape (x may be strided). Binary kernels: a and b
// are already expanded to out's shape. p0/p1 carry op parameters (slope, bounds, ...).
#pragma once

#include <cmath>

#include "kernels/registry.h"
#include "moxing/core/tensor.h"

namespace moxing::kernels {

using UnaryFn = void(const Tensor& x, Tensor& out, double p0, double p1);
using BinaryFn = void(const Tensor& a, const Tensor& b, Tensor& out, double p0);
using WhereFn = void(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out);

// binary, same dtype out
MOXING_DECLARE_KERNEL(add_forward, BinaryFn);  // a + p0 * b
MOXING_DECLARE_KERNEL(sub_forward, BinaryFn);  // a - p0 * b
MOXING_DECLARE_KERNEL(mul_forward, BinaryFn);
MOXING_DECLARE_KERNEL(div_forward, BinaryFn);
MOXING_DECLARE_KERNEL(pow_forward, BinaryFn);
MOXING_DECLARE_KERNEL(maximum_forward, BinaryFn);
MOXING_DECLARE_KERNEL(minimum_forward, BinaryFn);
// binary, bool out
MOXING_DECLARE_KERNEL(eq_forward, BinaryFn);
MOXING_DECLARE_KERNEL(ne_forward, BinaryFn);
MOXING_DECLARE_KERNEL(lt_forward, BinaryFn);
MOXING_DECLARE_KERNEL(le_forward, BinaryFn);
MOXING_DECLARE_KERNEL(gt_forward, BinaryFn);
MOXING_DECLARE_KERNEL(ge_forward, BinaryFn);
// backward helpers: (grad, x) -> grad_x
MOXING_DECLARE_KERNEL(gelu_backward, BinaryFn);        // p0: 0 erf form, 1 tanh form
MOXING_DECLARE_KERNEL(leaky_relu_backward, BinaryFn);  // p0: slope
MOXING_DECLARE_KERNEL(silu_backward, BinaryFn);
// ternary
MOXING_DECLARE_KERNEL(where_forward, WhereFn);  // keyed by the dtype of a
// unary
MOXING_DECLARE_KERNEL(neg_forward, UnaryFn);
MOXING_DECLARE_KERNEL(abs_forward, UnaryFn);
MOXING_DECLARE_KERNEL(clamp_forward, UnaryFn);  // p0 min, p1 max
MOXING_DECLARE_KERNEL(exp_forward, UnaryFn);
MOXING_DECLARE_KERNEL(log_forward, UnaryFn);
MOXING_DECLARE_KERNEL(log1p_forward, UnaryFn);
MOXING_DECLARE_KERNEL(sqrt_forward, UnaryFn);
MOXING_DECLARE_KERNEL(rsqrt_forward, UnaryFn);
MOXING_DECLARE_KERNEL(sin_forward, UnaryFn);
MOXING_DECLARE_KERNEL(cos_forward, UnaryFn);
MOXING_DECLARE_KERNEL(tanh_forward, UnaryFn);
MOXING_DECLARE_KERNEL(sigmoid_forward, UnaryFn);
MOXING_DECLARE_KERNEL(relu_forward, UnaryFn);
MOXING_DECLARE_KERNEL(leaky_relu_forward, UnaryFn);  // p0 slope
MOXING_DECLARE_KERNEL(gelu_forward, UnaryFn);        // p0: 0 erf form, 1 tanh form
MOXING_DECLARE_KERNEL(silu_forward, UnaryFn);
MOXING_DECLARE_KERNEL(softplus_forward, UnaryFn);  // p0 beta, p1 threshold
MOXING_DECLARE_KERNEL(logical_not_forward, UnaryFn);

// ---- scalar math (device-independent)
constexpr double kSqrt1_2 = 0.70710678118654752440;
constexpr double kSqrt2OverPi = 0.79788456080286535588;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;

template <class T>
inline T sigmoid_scalar(T x) {
  return T(1) / (T(1) + std::exp(-x));
}
// gelu(x) = x * Phi(x), or the tanh approximation 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3)))
template <class T>
inline T gelu_scalar(T x, bool tanh_form) {
  if (tanh_form) {
    T inner = T(kSqrt2OverPi) * (x + T(0.044715) * x * x * x);
    return T(0.5) * x * (T(1) + std::tanh(inner));
  }
  return T(0.5) * x * (T(1) + std::erf(x * T(kSqrt1_2)));
}
// d gelu/dx = Phi(x) + x phi(x); tanh form differentiates the approximation
template <class T>
inline T gelu_grad_scalar(T x, bool tanh_form) {
  if (tanh_form) {
    T inner = T(kSqrt2OverPi) * (x + T(0.044715) * x * x * x);
    T th = std::tanh(inner);
    T dinner = T(kSqrt2OverPi) * (T(1) + T(3 * 0.044715) * x * x);
    return T(0.5) * (T(1) + th) + T(0.5) * x * (T(1) - th * th) * dinner;
  }
  T cdf = T(0.5) * (T(1) + std::erf(x * T(kSqrt1_2)));
  T pdf = T(kInvSqrt2Pi) * std::exp(T(-0.5) * x * x);
  return cdf + x * pdf;
}
template <class T>
inline T softplus_scalar(T x, T beta, T threshold) {
  T bx = beta * x;
  return bx > threshold ? x : std::log1p(std::exp(bx)) / beta;
}

}  // namespace moxing::kernels
