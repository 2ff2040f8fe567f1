// CPU elementwise kernels: one templated loop each, registered for the dtypes they support.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "kernels/cpu/loops.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/elementwise.h"

namespace moxing::kernels::cpu {
namespace {

template <class T>
void add(const Tensor& a, const Tensor& b, Tensor& out, double alpha) {
  if (alpha == 1.0) {
    binary_loop<T, T>(a, b, out, [](T x, T y) { return static_cast<T>(x + y); });
  } else {
    const T al = static_cast<T>(alpha);
    binary_loop<T, T>(a, b, out, [al](T x, T y) { return static_cast<T>(x + al * y); });
  }
}
template <class T>
void sub(const Tensor& a, const Tensor& b, Tensor& out, double alpha) {
  const T al = static_cast<T>(alpha);
  binary_loop<T, T>(a, b, out, [al](T x, T y) { return static_cast<T>(x - al * y); });
}
template <class T>
void mul(const Tensor& a, const Tensor& b, Tensor& out, double) {
  binary_loop<T, T>(a, b, out, [](T x, T y) { return static_cast<T>(x * y); });
}
template <class T>
void div(const Tensor& a, const Tensor& b, Tensor& out, double) {
  binary_loop<T, T>(a, b, out, [](T x, T y) { return static_cast<T>(x / y); });
}
template <class T>
void pow(const Tensor& a, const Tensor& b, Tensor& out, double) {
  binary_loop<T, T>(a, b, out, [](T x, T y) { return static_cast<T>(std::pow(x, y)); });
}
template <class T>
void maximum(const Tensor& a, const Tensor& b, Tensor& out, double) {
  binary_loop<T, T>(a, b, out, [](T x, T y) { return (x != x || x > y) ? x : y; });
}
template <class T>
void minimum(const Tensor& a, const Tensor& b, Tensor& out, double) {
  binary_loop<T, T>(a, b, out, [](T x, T y) { return (x != x || x < y) ? x : y; });
}

#define MOXING_CMP_KERNEL(name, expr)                                                  \
  template <class T>                                                                   \
  void name(const Tensor& a, const Tensor& b, Tensor& out, double) {                   \
    binary_loop<T, bool>(a, b, out, [](T x, T y) { return static_cast<bool>(expr); }); \
  }
MOXING_CMP_KERNEL(eq, x == y)
MOXING_CMP_KERNEL(ne, x != y)
MOXING_CMP_KERNEL(lt, x < y)
MOXING_CMP_KERNEL(le, x <= y)
MOXING_CMP_KERNEL(gt, x > y)
MOXING_CMP_KERNEL(ge, x >= y)
#undef MOXING_CMP_KERNEL

// GELU in f32 with the vectorizable tanh_f32 (the tanh form, GPT-2's) and erf_f32 (the erf
// form, BERT's), built per ISA.
__attribute__((always_inline)) inline float gelu_tanh_f32(float x) {
  float inner = static_cast<float>(kSqrt2OverPi) * (x + 0.044715f * x * x * x);
  return 0.5f * x * (1.0f + tanh_f32(inner));
}
__attribute__((always_inline)) inline float gelu_tanh_grad_f32(float x) {
  float inner = static_cast<float>(kSqrt2OverPi) * (x + 0.044715f * x * x * x);
  float th = tanh_f32(inner);
  float dinner = static_cast<float>(kSqrt2OverPi) * (1.0f + 3.0f * 0.044715f * x * x);
  return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * dinner;
}
// y = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)); dy/dx = Phi(x) + x phi(x)
__attribute__((always_inline)) inline float gelu_erf_f32(float x) {
  return 0.5f * x * (1.0f + erf_f32(x * static_cast<float>(kSqrt1_2)));
}
__attribute__((always_inline)) inline float gelu_erf_grad_f32(float x) {
  const float kInvSqrt2Pi = 0.398942280401432678f;
  float cdf = 0.5f * (1.0f + erf_f32(x * static_cast<float>(kSqrt1_2)));
  return cdf + x * kInvSqrt2Pi * exp_f32(-0.5f * x * x);
}
#define MOXING_GELU_ROWS(suffix, attr)                                                   \
  attr void gelu_rows_##suffix(const float* x, float* y, int64_t n, bool tanh_form) {    \
    if (tanh_form) {                                                                     \
      for (int64_t i = 0; i < n; ++i) y[i] = gelu_tanh_f32(x[i]);                        \
    } else {                                                                             \
      for (int64_t i = 0; i < n; ++i) y[i] = gelu_erf_f32(x[i]);                         \
    }                                                                                    \
  }                                                                                      \
  attr void gelu_grad_rows_##suffix(const float* g, const float* x, float* y, int64_t n, \
                                    bool tanh_form) {                                    \
    if (tanh_form) {                                                                     \
      for (int64_t i = 0; i < n; ++i) y[i] = g[i] * gelu_tanh_grad_f32(x[i]);            \
    } else {                                                                             \
      for (int64_t i = 0; i < n; ++i) y[i] = g[i] * gelu_erf_grad_f32(x[i]);             \
    }                                                                                    \
  }
MOXING_GELU_ROWS(avx512, MOXING_TARGET_AVX512)
MOXING_GELU_ROWS(avx2, MOXING_TARGET_AVX2)
MOXING_GELU_ROWS(base, __attribute__((noinline)))
#undef MOXING_GELU_ROWS

void gelu_rows(const float* x, float* y, int64_t n, bool tanh_form) {
  switch (cpu_level()) {
    case CpuLevel::avx512:
      return gelu_rows_avx512(x, y, n, tanh_form);
    case CpuLevel::avx2:
      return gelu_rows_avx2(x, y, n, tanh_form);
    case CpuLevel::base:
      return gelu_rows_base(x, y, n, tanh_form);
  }
}
void gelu_grad_rows(const float* g, const float* x, float* y, int64_t n, bool tanh_form) {
  switch (cpu_level()) {
    case CpuLevel::avx512:
      return gelu_grad_rows_avx512(g, x, y, n, tanh_form);
    case CpuLevel::avx2:
      return gelu_grad_rows_avx2(g, x, y, n, tanh_form);
    case CpuLevel::base:
      return gelu_grad_rows_base(g, x, y, n, tanh_form);
  }
}

template <class T>
void gelu_backward(const Tensor& g, const Tensor& x, Tensor& out, double tanh_form) {
  bool tf = tanh_form != 0.0;
  if constexpr (std::is_same_v<T, float>) {
    for_each_strided<3>({&out, &g, &x}, [&](char* const* p, const int64_t* s, int64_t n) {
      if (s[0] == 4 && s[1] == 4 && s[2] == 4) {
        gelu_grad_rows(reinterpret_cast<const float*>(p[1]), reinterpret_cast<const float*>(p[2]),
                       reinterpret_cast<float*>(p[0]), n, tf);
        return;
      }
      for (int64_t i = 0; i < n; ++i) {
        float xv = *reinterpret_cast<const float*>(p[2] + i * s[2]);
        *reinterpret_cast<float*>(p[0] + i * s[0]) =
            *reinterpret_cast<const float*>(p[1] + i * s[1]) *
            (tf ? gelu_tanh_grad_f32(xv) : gelu_erf_grad_f32(xv));
      }
    });
    return;
  }
  binary_loop<T, T>(g, x, out, [tf](T gv, T xv) { return gv * gelu_grad_scalar(xv, tf); });
}
template <class T>
void leaky_relu_backward(const Tensor& g, const Tensor& x, Tensor& out, double slope) {
  const T s = static_cast<T>(slope);
  binary_loop<T, T>(g, x, out, [s](T gv, T xv) { return xv > T(0) ? gv : gv * s; });
}
template <class T>
void silu_backward(const Tensor& g, const Tensor& x, Tensor& out, double) {
  binary_loop<T, T>(g, x, out, [](T gv, T xv) {
    T s = sigmoid_scalar(xv);
    return gv * s * (T(1) + xv * (T(1) - s));
  });
}

template <class T>
void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  for_each_strided<4>({&out, &cond, &a, &b}, [](char* const* p, const int64_t* s, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      bool c = *reinterpret_cast<const bool*>(p[1] + i * s[1]);
      *reinterpret_cast<T*>(p[0] + i * s[0]) = c ? *reinterpret_cast<const T*>(p[2] + i * s[2])
                                                 : *reinterpret_cast<const T*>(p[3] + i * s[3]);
    }
  });
}

#define MOXING_UNARY_KERNEL(name, expr)                                  \
  template <class T>                                                     \
  void name(const Tensor& x, Tensor& out, [[maybe_unused]] double p0,    \
            [[maybe_unused]] double p1) {                                \
    unary_loop<T, T>(x, out, [=](T v) { return static_cast<T>(expr); }); \
  }
MOXING_UNARY_KERNEL(neg, -v)
MOXING_UNARY_KERNEL(abs, v < T(0) ? -v : v)
MOXING_UNARY_KERNEL(clamp, std::min<T>(std::max<T>(v, static_cast<T>(p0)), static_cast<T>(p1)))
MOXING_UNARY_KERNEL(exp, std::exp(v))
MOXING_UNARY_KERNEL(log, std::log(v))
MOXING_UNARY_KERNEL(log1p, std::log1p(v))
MOXING_UNARY_KERNEL(sqrt, std::sqrt(v))
MOXING_UNARY_KERNEL(rsqrt, T(1) / std::sqrt(v))
MOXING_UNARY_KERNEL(sin, std::sin(v))
MOXING_UNARY_KERNEL(cos, std::cos(v))
MOXING_UNARY_KERNEL(tanh, std::tanh(v))
MOXING_UNARY_KERNEL(sigmoid, sigmoid_scalar(v))
MOXING_UNARY_KERNEL(relu, v < T(0) ? T(0) : v)  // NaN passes through, as in torch
MOXING_UNARY_KERNEL(leaky_relu, v > T(0) ? v : v * static_cast<T>(p0))
MOXING_UNARY_KERNEL(gelu_generic, gelu_scalar(v, p0 != 0.0))
MOXING_UNARY_KERNEL(silu, v* sigmoid_scalar(v))
MOXING_UNARY_KERNEL(softplus, softplus_scalar(v, static_cast<T>(p0), static_cast<T>(p1)))
#undef MOXING_UNARY_KERNEL

template <class T>
void gelu(const Tensor& x, Tensor& out, double tanh_form, double p1) {
  if constexpr (std::is_same_v<T, float>) {
    const bool tf = tanh_form != 0.0;
    for_each_strided<2>({&out, &x}, [&](char* const* p, const int64_t* s, int64_t n) {
      if (s[0] == 4 && s[1] == 4) {
        gelu_rows(reinterpret_cast<const float*>(p[1]), reinterpret_cast<float*>(p[0]), n, tf);
        return;
      }
      for (int64_t i = 0; i < n; ++i) {
        float xv = *reinterpret_cast<const float*>(p[1] + i * s[1]);
        *reinterpret_cast<float*>(p[0] + i * s[0]) = tf ? gelu_tanh_f32(xv) : gelu_erf_f32(xv);
      }
    });
    return;
  }
  gelu_generic<T>(x, out, tanh_form, p1);
}

void logical_not(const Tensor& x, Tensor& out, double, double) {
  unary_loop<bool, bool>(x, out, [](bool v) { return !v; });
}

}  // namespace

#define MOXING_REGISTER_FLOAT(table, fn)              \
  MOXING_REGISTER_KERNEL(table, cpu, f32, fn<float>); \
  MOXING_REGISTER_KERNEL(table, cpu, f64, fn<double>)
#define MOXING_REGISTER_NUMERIC(table, fn)              \
  MOXING_REGISTER_FLOAT(table, fn);                     \
  MOXING_REGISTER_KERNEL(table, cpu, i64, fn<int64_t>); \
  MOXING_REGISTER_KERNEL(table, cpu, i32, fn<int32_t>); \
  MOXING_REGISTER_KERNEL(table, cpu, u8, fn<uint8_t>)

MOXING_REGISTER_NUMERIC(add_forward, add);
MOXING_REGISTER_NUMERIC(sub_forward, sub);
MOXING_REGISTER_NUMERIC(mul_forward, mul);
MOXING_REGISTER_NUMERIC(div_forward, div);
MOXING_REGISTER_FLOAT(pow_forward, pow);
MOXING_REGISTER_NUMERIC(maximum_forward, maximum);
MOXING_REGISTER_NUMERIC(minimum_forward, minimum);
MOXING_REGISTER_NUMERIC(eq_forward, eq);
MOXING_REGISTER_KERNEL(eq_forward, cpu, boolean, eq<bool>);
MOXING_REGISTER_NUMERIC(ne_forward, ne);
MOXING_REGISTER_KERNEL(ne_forward, cpu, boolean, ne<bool>);
MOXING_REGISTER_NUMERIC(lt_forward, lt);
MOXING_REGISTER_NUMERIC(le_forward, le);
MOXING_REGISTER_NUMERIC(gt_forward, gt);
MOXING_REGISTER_NUMERIC(ge_forward, ge);
MOXING_REGISTER_FLOAT(gelu_backward, gelu_backward);
MOXING_REGISTER_FLOAT(leaky_relu_backward, leaky_relu_backward);
MOXING_REGISTER_FLOAT(silu_backward, silu_backward);
MOXING_REGISTER_NUMERIC(where_forward, where);
MOXING_REGISTER_KERNEL(where_forward, cpu, boolean, where<bool>);
MOXING_REGISTER_FLOAT(neg_forward, neg);
MOXING_REGISTER_KERNEL(neg_forward, cpu, i64, neg<int64_t>);
MOXING_REGISTER_KERNEL(neg_forward, cpu, i32, neg<int32_t>);
MOXING_REGISTER_FLOAT(abs_forward, abs);
MOXING_REGISTER_KERNEL(abs_forward, cpu, i64, abs<int64_t>);
MOXING_REGISTER_FLOAT(clamp_forward, clamp);
MOXING_REGISTER_FLOAT(exp_forward, exp);
MOXING_REGISTER_FLOAT(log_forward, log);
MOXING_REGISTER_FLOAT(log1p_forward, log1p);
MOXING_REGISTER_FLOAT(sqrt_forward, sqrt);
MOXING_REGISTER_FLOAT(rsqrt_forward, rsqrt);
MOXING_REGISTER_FLOAT(sin_forward, sin);
MOXING_REGISTER_FLOAT(cos_forward, cos);
MOXING_REGISTER_FLOAT(tanh_forward, tanh);
MOXING_REGISTER_FLOAT(sigmoid_forward, sigmoid);
MOXING_REGISTER_FLOAT(relu_forward, relu);
MOXING_REGISTER_FLOAT(leaky_relu_forward, leaky_relu);
MOXING_REGISTER_FLOAT(gelu_forward, gelu);
MOXING_REGISTER_FLOAT(silu_forward, silu);
MOXING_REGISTER_FLOAT(softplus_forward, softplus);
MOXING_REGISTER_KERNEL(logical_not_forward, cpu, boolean, logical_not);

}  // namespace moxing::kernels::cpu
